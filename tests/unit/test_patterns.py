"""Throttle and OOM log patterns."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from otel_sidecar import patterns

THROTTLES = patterns.compile_throttles()


@pytest.mark.parametrize("line", [
    "botocore.exceptions.ClientError: An error occurred (ThrottlingException) when calling the Invoke operation",
    "TooManyRequestsException: Rate exceeded",
    "An error occurred (ProvisionedThroughputExceededException) when calling the PutItem operation",
    "S3 returned SlowDown: Please reduce your request rate.",
    "HTTP 429 Too Many Requests",
    "upstream answered HTTP/1.1 429",
    '{"statusCode": 429, "message": "limit"}',
    "request failed with status code 429",
    "Rate exceeded",
    "RequestLimitExceeded",
])
def test_throttle_lines(line):
    assert patterns.is_throttle(line, THROTTLES)


@pytest.mark.parametrize("line", [
    "processed 429 items", "order 4290 shipped", "everything is fine", "throttle settings loaded: max=10",
    "slowdown factor 2",
])
def test_not_throttle_lines(line):
    assert not patterns.is_throttle(line, THROTTLES)


@pytest.mark.parametrize("line,runtime", [
    ("MemoryError", "python"),
    ("[ERROR] MemoryError: Unable to allocate 8.00 GiB", "python"),
    ("FATAL ERROR: Ineffective mark-compacts near heap limit Allocation failed - JavaScript heap out of memory",
     "node"),
    ("java.lang.OutOfMemoryError: Java heap space", "java"),
    ("fatal error: runtime: out of memory", "go"),
    ("System.OutOfMemoryException: Exception of type 'System.OutOfMemoryException' was thrown.", "dotnet"),
    ("failed to allocate memory (NoMemoryError)", "ruby"),
    ("memory allocation of 1073741824 bytes failed", "rust"),
    ("Error Type: Runtime.OutOfMemory", "lambda"),
])
def test_oom_lines_per_runtime(line, runtime):
    assert patterns.oom_runtime(line) == runtime


@pytest.mark.parametrize("line", ["memory usage is fine", "MemoryErrorHandler installed", "out of stock"])
def test_not_oom_lines(line):
    assert patterns.oom_runtime(line) is None


def test_custom_patterns_replace_or_extend_the_defaults():
    only = patterns.compile_throttles(["QuotaHit"])
    assert patterns.is_throttle("quotahit!", only) and not patterns.is_throttle("ThrottlingException", only)
    both = patterns.compile_throttles(["QuotaHit"], extend=True)
    assert patterns.is_throttle("QuotaHit", both) and patterns.is_throttle("ThrottlingException", both)


def test_only_the_head_of_huge_lines_is_scanned():
    assert not patterns.is_throttle("x" * patterns.MAX_SCAN + "ThrottlingException", THROTTLES)


# The substring filters in front of the default regexes must never change an answer.
_SAMPLES = ["ThrottlingException", "TOOMANYREQUESTSEXCEPTION", "rate Exceeded", "ProvisionedThroughputExceededException",
            "requestlimitexceeded", "SlowDown", "429 Too Many Requests", "too many requests", "HTTP/1.1 429",
            "status_code = '429'", "statusCode: 429", "MemoryError", "JavaScript heap out of memory",
            "FATAL ERROR: x Allocation failed", "java.lang.OutOfMemoryError", "fatal error: runtime: out of memory",
            "System.OutOfMemoryException", "NoMemoryError", "failed to allocate memory",
            "memory allocation of 12 bytes failed", "Runtime.OutOfMemory", "Requeſts", "ſlowDown"]


@settings(max_examples=400, deadline=None)
@given(st.lists(st.one_of(st.sampled_from(_SAMPLES), st.text(max_size=30)), max_size=5).map(" ".join))
def test_the_substring_filters_agree_with_the_regexes(line):
    assert (THROTTLES.search(line) is not None) == (THROTTLES.regex.search(line) is not None)
    assert (patterns.oom_runtime(line) is not None) == (patterns._OOM_RE.search(line) is not None)
