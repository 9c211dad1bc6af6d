"""Log-line patterns: downstream throttles and out-of-memory lines per runtime. Pure."""

from __future__ import annotations

import re
from typing import Any, Iterable, Match, Optional, Pattern, Tuple

# Throttle errors a function gets from the services it calls (AWS SDK error codes and HTTP 429).
DEFAULT_THROTTLE_PATTERNS: Tuple[str, ...] = (
    r"ThrottlingException",
    r"TooManyRequestsException",
    r"Rate exceeded",
    r"ProvisionedThroughputExceededException",
    r"RequestLimitExceeded",
    r"(?-i:\bSlowDown\b)",  # S3's error code; case-sensitive so "slowdown" in prose does not count
    r"\b429 Too Many Requests\b",
    r"\bToo Many Requests\b",
    # "HTTP 429", "HTTP/1.1 429", "status 429", "status code: 429", "StatusCode=429", '"statusCode": 429'
    r"(?:HTTP(?:/\d(?:\.\d)?)?|status[ _-]?code|statusCode|status)[\"']?\s*[:=]?\s*[\"']?429\b",
)

# Out-of-memory lines, per runtime. The key names the runtime (kept for messages and tests).
OOM_PATTERNS: Tuple[Tuple[str, str], ...] = (
    ("python", r"\bMemoryError\b"),
    ("node", r"JavaScript heap out of memory"),
    ("node", r"FATAL ERROR: .{0,80}Allocation failed"),
    ("java", r"java\.lang\.OutOfMemoryError"),
    ("go", r"fatal error: runtime: out of memory"),
    ("dotnet", r"System\.OutOfMemoryException"),
    ("ruby", r"\bNoMemoryError\b|failed to allocate memory"),
    ("rust", r"memory allocation of \d+ bytes failed"),
    ("lambda", r"\bRuntime\.OutOfMemory\b"),
)

_OOM_RE: Pattern[str] = re.compile("|".join(f"(?:{p})" for _, p in OOM_PATTERNS))
# Lines longer than this are only searched in their first part: patterns sit at the start of errors.
MAX_SCAN = 8192

# Every line a default pattern matches contains one of these (case-folded): a substring test that rules
# out almost every log line for a fraction of the regex's cost (tests/unit/test_patterns.py checks it is
# never wrong). Patterns a user configures get no such filter.
THROTTLE_KEYS = ("throttl", "toomanyrequests", "rate exceeded", "provisionedthroughput", "requestlimitexceeded",
                 "slowdown", "too many requests", "429")
OOM_KEYS = ("memory", "allocation failed")


class Matcher:
    """A compiled regex behind an optional necessary-substring filter (the text is case-folded for it)."""

    __slots__ = ("regex", "keys")

    def __init__(self, regex: Pattern[str], keys: Tuple[str, ...] = ()) -> None:
        self.regex, self.keys = regex, keys

    def search(self, text: str) -> Optional[Match[str]]:
        if self.keys:
            folded = text.casefold()
            if not any(k in folded for k in self.keys):
                return None
        return self.regex.search(text)


def compile_throttles(patterns: Iterable[str] = (), extend: bool = False) -> Matcher:
    """One case-insensitive regex for the throttle patterns (the defaults when none are given)."""
    pats = tuple(patterns)
    if not pats:
        pats = DEFAULT_THROTTLE_PATTERNS
    elif extend:
        pats = DEFAULT_THROTTLE_PATTERNS + pats
    regex = re.compile("|".join(f"(?:{p})" for p in pats), re.IGNORECASE)
    return Matcher(regex, THROTTLE_KEYS if pats == DEFAULT_THROTTLE_PATTERNS else ())


_OOM = Matcher(_OOM_RE, OOM_KEYS)


def is_throttle(text: str, compiled: Any) -> bool:
    return compiled.search(text[:MAX_SCAN]) is not None


def oom_runtime(text: str) -> Optional[str]:
    """The runtime whose OOM pattern the line matches, or None."""
    head = text[:MAX_SCAN]
    if _OOM.search(head) is None:
        return None
    for name, p in OOM_PATTERNS:
        if re.search(p, head):
            return name
    return None  # pragma: no cover - the combined regex matched, so one of the parts does
