"""How the sidecar prints anything that may hold a secret: URLs, headers, configuration values. Pure.

Every line that shows a URL, a header or a configuration value goes through one of these:

- url(u): the URL without its userinfo (user:password@ is never printed) and with query values masked;
- header_names(h): the names of headers, never a value;
- value(v): a bounded repr of a configuration value (long strings and deep structures cut, cheaply);
- line(text): a whole line cut to LINE_LIMIT characters, control characters escaped.

Header values and userinfo are never passed to any of them: callers name a header by key, or an entry of a
list by its position ("entry 2"), because the text of a malformed entry may itself be the secret.
"""

from __future__ import annotations

import reprlib
from typing import Any, Iterable, Tuple, Union
from urllib.parse import urlsplit

LINE_LIMIT = 300          # characters of one printed line
VALUE_LIMIT = 80          # characters of one value inside a line

_repr = reprlib.Repr()
_repr.maxlevel = 2
_repr.maxdict = _repr.maxlist = _repr.maxtuple = _repr.maxset = 4
_repr.maxstring = _repr.maxother = VALUE_LIMIT
_repr.maxlong = 40

_CONTROL = {c: f"\\x{c:02x}" for c in range(32)}
_CONTROL.update({0x7F: "\\x7f", 0x0A: "\\n", 0x0D: "\\r", 0x09: "\\t"})


def url(u: str) -> str:
    """The URL as printable: userinfo removed, query values replaced by ***, cut to VALUE_LIMIT * 2.

    Done on the text, not through urlsplit: a malformed URL (`https:///:pw@host`) must lose its userinfo too,
    so everything between "://" and the last "@" goes.
    """
    text = str(u)
    scheme, sep, rest = text.partition("://") if "://" in text else ("", "", text)
    # everything up to the last "@" goes (in printing only: a path holding "@" loses its start)
    head, q, query = rest.rpartition("@")[2].partition("?")
    if query:
        query = "&".join(f"{p.partition('=')[0]}=***" if "=" in p else p for p in query.split("&"))
    return shorten(f"{scheme}{sep}{head}{q}{query}", VALUE_LIMIT * 2)


def has_userinfo(u: str) -> bool:
    try:
        return "@" in urlsplit(str(u)).netloc
    except ValueError:
        return "@" in str(u)


def header_names(headers: Union[Iterable[Tuple[str, Any]], Any]) -> str:
    """'Authorization, x-api-key' (names only, sorted, each cut); '(none)' when empty."""
    items = headers.items() if hasattr(headers, "items") else headers
    names = sorted({shorten(str(k), 40) for k, _ in items})
    return ", ".join(names) if names else "(none)"


def value(v: Any) -> str:
    """repr(v), bounded in length and in the work it costs (reprlib: deep or aliased structures stay cheap)."""
    if isinstance(v, str):
        return repr(shorten(v, VALUE_LIMIT))
    return shorten(_repr.repr(v), VALUE_LIMIT)


def shorten(text: str, limit: int = LINE_LIMIT) -> str:
    """text with control characters escaped, cut to about `limit` characters (the cut is said)."""
    s = str(text)
    if len(s) > limit * 4:
        s = s[: limit * 4]          # escaping below never looks at more than this
        more = len(str(text)) - limit
    else:
        more = 0
    s = s.translate(_CONTROL)
    if len(s) > limit:
        more = more or len(s) - limit
        s = s[: limit - 1] + f"… ({more} more characters)"
    return s


def line(text: str) -> str:
    """A whole printed line: control characters escaped, at most about LINE_LIMIT characters."""
    return shorten(text, LINE_LIMIT)
