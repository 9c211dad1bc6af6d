"""logs.py: the _LAMBDA_TELEMETRY_LOG_FD frame reader and the line pump; processes.py's frame pump."""

from __future__ import annotations

import io
import os
import threading

from hypothesis import given
from hypothesis import strategies as st
from lambda_sandbox.logs import LogFrameReader, describe_frame_type, encode_frame, pump_lines
from lambda_sandbox.processes import PipeSource, pump_source_frames

TEXT_TYPES = [0xA55A0003, 0xA55A000B, 0xA55A000F, 0xA55A0013, 0xA55A0017, 0xA55A001B]
JSON_TYPES = [0xA55A0002, 0xA55A000A, 0xA55A000E, 0xA55A0012, 0xA55A0016, 0xA55A001A]


def test_frame_types_of_awslambdaric_map_to_format_and_level():
    assert [describe_frame_type(t) for t in TEXT_TYPES] == [
        ("text", None), ("text", "DEBUG"), ("text", "INFO"), ("text", "WARN"), ("text", "ERROR"), ("text", "FATAL")]
    assert [describe_frame_type(t)[1] for t in JSON_TYPES] == [None, "DEBUG", "INFO", "WARN", "ERROR", "FATAL"]
    assert {describe_frame_type(t)[0] for t in JSON_TYPES} == {"json"}


def test_reader_matches_awslambdaric_sink_bytes():
    # built exactly as awslambdaric's FramedTelemetryLogSink does
    msg = "[ERROR] boom\nTraceback (most recent call last):\n  File x\n"
    raw = (0xA55A0017).to_bytes(4, "big") + len(msg.encode()).to_bytes(4, "big") + \
        (1_780_000_000_123_456).to_bytes(8, "big") + msg.encode()
    frames = LogFrameReader().feed(raw)
    assert len(frames) == 1
    f = frames[0]
    assert (f.message, f.level, f.format) == (msg, "ERROR", "text")  # a multi-line traceback stays one record
    assert abs(f.time - 1_780_000_000.123456) < 1e-6


messages = st.lists(st.tuples(st.text(max_size=300), st.sampled_from(TEXT_TYPES + JSON_TYPES),
                              st.integers(min_value=0, max_value=4_000_000_000_000_000)), max_size=20)


@given(messages, st.lists(st.integers(min_value=1, max_value=64), min_size=1, max_size=50))
def test_any_chunking_yields_the_same_frames(items, cuts):
    stream = b"".join(encode_frame(m, t / 1e6, ft) for m, ft, t in items)
    reader = LogFrameReader()
    got = []
    pos, i = 0, 0
    while pos < len(stream):
        n = cuts[i % len(cuts)]
        got += reader.feed(stream[pos:pos + n])
        pos += n
        i += 1
    assert [(f.message, f.frame_type) for f in got] == [(m, ft) for m, ft, _ in items]
    assert [round(f.time * 1e6) for f in got] == [t for _, _, t in items]
    assert reader.pending_bytes == 0 and reader.skipped_bytes == 0


@given(st.binary(min_size=1, max_size=40).filter(lambda b: b"\xa5\x5a\x00" not in b), st.text(max_size=50))
def test_garbage_before_a_frame_is_skipped_and_counted(garbage, msg):
    reader = LogFrameReader()
    frames = reader.feed(garbage + encode_frame(msg, 1.0))
    assert [f.message for f in frames] == [msg]
    assert reader.skipped_bytes == len(garbage)


def test_invalid_utf8_is_replaced_not_fatal():
    raw = (0xA55A0003).to_bytes(4, "big") + (3).to_bytes(4, "big") + (0).to_bytes(8, "big") + b"a\xffb"
    assert LogFrameReader().feed(raw)[0].message == "a\ufffdb"


def test_pump_source_frames_reads_a_pipe_until_eof_and_marks_it_drained():
    r, w = os.pipe()
    got = []
    source = PipeSource(r)
    t = pump_source_frames(source, got.append, "test-frames")
    os.write(w, encode_frame("one\n", 1.0) + encode_frame("two", 2.0, 0xA55A000E)[:10])
    os.write(w, encode_frame("two", 2.0, 0xA55A000E)[10:])
    os.close(w)
    t.join(5)
    assert not t.is_alive()
    assert [(f.message, f.level, f.time) for f in got] == [("one\n", None, 1.0), ("two", "INFO", 2.0)]
    assert source.eof and source.drained()


def test_pump_source_frames_survives_a_failing_consumer():
    r, w = os.pipe()
    got = []

    def consumer(frame):
        got.append(frame.message)
        raise RuntimeError("consumer bug")

    t = pump_source_frames(PipeSource(r), consumer, "test-frames")
    os.write(w, encode_frame("a", 1.0) + encode_frame("b", 2.0))
    os.close(w)
    t.join(5)
    assert got == ["a", "b"]


def test_pump_lines_splits_lines_and_strips_newlines():
    stream = io.BytesIO(b"first\nsecond\r\n{\"a\": 1}\nno newline at end")
    got, done = [], threading.Event()
    t = pump_lines(stream, got.append, on_eof=done.set)
    assert done.wait(5)
    t.join(5)
    assert got == ["first", "second", '{"a": 1}', "no newline at end"]


def test_pump_lines_survives_a_failing_consumer():
    stream = io.BytesIO(b"a\nb\n")
    got = []

    def consumer(line):
        got.append(line)
        raise RuntimeError("consumer bug")

    pump_lines(stream, consumer).join(5)
    assert got == ["a", "b"]
