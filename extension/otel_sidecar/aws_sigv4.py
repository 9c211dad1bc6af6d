"""AWS Signature Version 4 for one request, by hand (botocore is far too heavy for the layer). Pure.

sign(...) returns the headers to add (X-Amz-Date, X-Amz-Security-Token when there is a session token,
Authorization). It signs every header it is given plus host, as botocore's SigV4Auth does (except
User-Agent, Expect and X-Amzn-Trace-Id, which botocore leaves unsigned too); tests/otlp/test_aws_secrets.py
checks the signatures against botocore's for random requests.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Dict, Mapping, NamedTuple, Optional
from urllib.parse import quote, urlsplit

ALGORITHM = "AWS4-HMAC-SHA256"
_UNSIGNED = frozenset(("user-agent", "expect", "x-amzn-trace-id"))


class Credentials(NamedTuple):
    access_key: str
    secret_key: str
    token: Optional[str] = None


def sign(method: str, url: str, headers: Mapping[str, str], body: bytes, region: str, service: str,
         creds: Credentials, amz_date: str) -> Dict[str, str]:
    """Headers to add to the request so that AWS accepts it. amz_date: UTC time as YYYYMMDD'T'HHMMSS'Z'."""
    parts = urlsplit(url)
    added: Dict[str, str] = {"X-Amz-Date": amz_date}
    if creds.token:
        added["X-Amz-Security-Token"] = creds.token
    signed: Dict[str, str] = {}
    for name, value in list(headers.items()) + list(added.items()):
        low = name.lower()
        if low not in _UNSIGNED:
            signed[low] = " ".join(str(value).split())
    if "host" not in signed:
        signed["host"] = canonical_host(url)
    names = sorted(signed)
    canonical_headers = "".join(f"{n}:{signed[n]}\n" for n in names)
    signed_headers = ";".join(names)
    canonical = "\n".join((method.upper(), canonical_path(parts.path), canonical_query(parts.query),
                           canonical_headers, signed_headers, hashlib.sha256(body).hexdigest()))
    scope = f"{amz_date[:8]}/{region}/{service}/aws4_request"
    to_sign = "\n".join((ALGORITHM, amz_date, scope, hashlib.sha256(canonical.encode("utf-8")).hexdigest()))
    key = signing_key(creds.secret_key, amz_date[:8], region, service)
    signature = hmac.new(key, to_sign.encode("utf-8"), hashlib.sha256).hexdigest()
    added["Authorization"] = (f"{ALGORITHM} Credential={creds.access_key}/{scope}, "
                              f"SignedHeaders={signed_headers}, Signature={signature}")
    return added


def signing_key(secret_key: str, date: str, region: str, service: str) -> bytes:
    key = ("AWS4" + secret_key).encode("utf-8")
    for part in (date, region, service, "aws4_request"):
        key = hmac.new(key, part.encode("utf-8"), hashlib.sha256).digest()
    return key


def canonical_host(url: str) -> str:
    """host[:port] as sent in the Host header (the scheme's default port left out)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    default = {"http": 80, "https": 443}.get(parts.scheme)
    return host if parts.port in (None, default) else f"{host}:{parts.port}"


def canonical_path(path: str) -> str:
    """The URI path with dot segments removed, each segment URI-encoded (services other than S3)."""
    if not path:
        return "/"
    out: list = []
    for seg in path.split("/"):
        if seg == "..":
            if out:
                out.pop()
        elif seg and seg != ".":
            out.append(seg)
    normalized = "/" + "/".join(out)
    if path.endswith("/") and normalized != "/":
        normalized += "/"
    return quote(normalized, safe="/~")


def canonical_query(query: str) -> str:
    """The query's pairs sorted; like botocore, the query is taken as already URI-encoded."""
    if not query:
        return ""
    pairs = [item.partition("=")[::2] for item in query.split("&")]
    return "&".join(f"{k}={v}" for k, v in sorted(pairs))
