"""redact.py: what the sidecar prints of URLs, headers and values never holds a secret, and is bounded."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from otel_sidecar import redact

SECRET = "pa55-w0rd"


def test_a_url_is_printed_without_its_userinfo_and_with_query_values_masked():
    assert redact.url(f"https://user:{SECRET}@otlp.example.com:4318/v1/traces") == \
        "https://otlp.example.com:4318/v1/traces"
    assert redact.url(f"https://otlp.example.com/v1/traces?api-key={SECRET}&x") == \
        "https://otlp.example.com/v1/traces?api-key=***&x"
    assert SECRET not in redact.url(f"http://{SECRET}@[::1")            # unparsable: still no userinfo


@given(user=st.text(min_size=1, max_size=10), secret=st.text(min_size=6, max_size=20).filter(lambda s: "@" not in s))
def test_no_userinfo_survives_any_url(user, secret):
    text = redact.url(f"https://{user}:{secret}@h.example/p")
    assert secret not in text or secret in "https://h.example/p"
    assert text.endswith("h.example/p")


def test_headers_are_named_never_valued():
    assert redact.header_names({"x-api-key": SECRET, "Authorization": SECRET}) == "Authorization, x-api-key"
    assert redact.header_names([]) == "(none)"


def test_values_and_lines_are_bounded_and_cheap_for_any_structure():
    deep: list = []
    for _ in range(5000):
        deep = [deep, deep]               # 2^5000 leaves if walked naively
    assert len(redact.value(deep)) <= redact.VALUE_LIMIT
    assert len(redact.value("x" * 10**6)) <= redact.VALUE_LIMIT + 30
    line = redact.line("a\nb\x00c" + "z" * 10**6)
    assert len(line) <= redact.LINE_LIMIT + 40 and "\n" not in line and "\x00" not in line
