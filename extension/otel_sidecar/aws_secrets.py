"""OTLP headers kept in AWS Secrets Manager or SSM Parameter Store, fetched once per environment.

    SIDECAR_OTLP_HEADERS_SECRET_ARN      a Secrets Manager secret (ARN or name) whose SecretString is
                                         `key=value,...` (as OTEL_EXPORTER_OTLP_HEADERS) or a JSON object
    SIDECAR_OTLP_HEADERS_SSM_PARAMETER   an SSM parameter (name or ARN; a SecureString, read WithDecryption)
                                         holding the same

start(env) runs the fetch on its own thread, with the function's role credentials (AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN) and a hand-made SigV4 signature (aws_sigv4.py), over TLS with
http.client; the worker calls it from its one-time setup (through otlp.create_sink), i.e. after the first
invocation's response, never on the path to the first /next. The OTLP senders (otlp/transport.py) wait for
it before their first export within their own deadlines (a post-runtime flush does not wait: its data stays
buffered for the background sender), then add its headers to every request; the result is kept for the
environment's life. Any failure degrades: one line naming the variable, its value (an ARN or a name, not the
secret) and the AWS error code; EMF goes on; OTLP requests then fail without being sent and their data is
dropped and counted. The secret itself is never printed: headers are named by key, a malformed entry by
its position.

Endpoint overrides (the AWS SDKs' variables): AWS_ENDPOINT_URL_SECRETS_MANAGER, AWS_ENDPOINT_URL_SSM,
AWS_ENDPOINT_URL; plain http only for a loopback host (the request carries a signature, the answer the secret).
"""

from __future__ import annotations

import http.client
import json
import logging
import random
import socket
import ssl
import threading
import time
from typing import Callable, Dict, List, Mapping, NamedTuple, Optional, Tuple
from urllib.parse import urlsplit

from . import redact
from .aws_sigv4 import Credentials, sign

log = logging.getLogger("otel_sidecar")

SECRET_VAR = "SIDECAR_OTLP_HEADERS_SECRET_ARN"
SSM_VAR = "SIDECAR_OTLP_HEADERS_SSM_PARAMETER"
MAX_RESPONSE = 256 * 1024            # a secret is at most 64 KiB; JSON escaping can double it
ATTEMPT_TIMEOUT_S = 3.0
TOTAL_DEADLINE_S = 10.0
MAX_ATTEMPTS = 3
RETRYABLE = frozenset(("ThrottlingException", "Throttling", "TooManyRequestsException", "RequestLimitExceeded",
                       "ThrottledException", "InternalServiceError", "InternalServerError", "InternalFailure",
                       "ServiceUnavailable", "ServiceUnavailableException", "RequestTimeout", "RequestTimeoutException"))


class Source(NamedTuple):
    """One fetch: which variable asked for it and the signed request that answers it."""

    var: str
    value: str                       # the ARN or name (printed in lines: not the secret)
    service: str                     # SigV4 service name: secretsmanager | ssm
    url: str
    region: str
    target: str                      # X-Amz-Target
    body: bytes


class Outcome(NamedTuple):
    headers: Dict[str, str]
    error: Optional[str] = None      # printable: AWS error code, HTTP status or a parse problem (no secret)


# ---- the pure part ----------------------------------------------------------------------------------------
def plan(env: Mapping[str, str]) -> Tuple[List[Source], List[str]]:
    """The fetches this environment asks for, and one line per problem found before any request."""
    sources: List[Source] = []
    problems: List[str] = []
    default_region = _raw(env, "AWS_REGION") or _raw(env, "AWS_DEFAULT_REGION")
    for var, service, target, endpoint_vars in (
            (SECRET_VAR, "secretsmanager", "secretsmanager.GetSecretValue",
             ("AWS_ENDPOINT_URL_SECRETS_MANAGER", "AWS_ENDPOINT_URL")),
            (SSM_VAR, "ssm", "AmazonSSM.GetParameter", ("AWS_ENDPOINT_URL_SSM", "AWS_ENDPOINT_URL"))):
        value = _raw(env, var)
        if value is None:
            continue
        region = _arn_region(value, service) or default_region or ""
        url, warning = _endpoint(env, endpoint_vars, service, region or "us-east-1")
        if warning:
            problems.append(warning)
        body = ({"SecretId": value} if service == "secretsmanager" else {"Name": value, "WithDecryption": True})
        sources.append(Source(var, value, service, url, region, target,
                              json.dumps(body, separators=(",", ":")).encode()))
    return sources, problems


def credentials(env: Mapping[str, str]) -> Optional[Credentials]:
    key, secret = _raw(env, "AWS_ACCESS_KEY_ID"), _raw(env, "AWS_SECRET_ACCESS_KEY")
    if not key or not secret:
        return None
    return Credentials(key, secret, _raw(env, "AWS_SESSION_TOKEN"))


def request_headers(source: Source, creds: Credentials, now: float) -> Dict[str, str]:
    """The signed headers of the request for `source` at time `now` (epoch seconds)."""
    headers = {"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": source.target,
               "Host": _host(source.url)}
    amz_date = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
    headers.update(sign("POST", source.url, headers, source.body, source.region, source.service, creds, amz_date))
    headers["User-Agent"] = "otel-sidecar"
    return headers


def parse_answer(source: Source, status: int, body: bytes, error_header: Optional[str]) -> Tuple[Outcome, bool]:
    """(outcome, retryable) of one answer. The text of the secret never reaches an error."""
    if status == 200:
        try:
            doc = json.loads(body)
        except ValueError:
            return Outcome({}, f"HTTP 200 with a body that is not JSON ({len(body)} bytes)"), True
        if source.service == "secretsmanager":
            text = doc.get("SecretString") if isinstance(doc, dict) else None
            if not isinstance(text, str):
                has_binary = isinstance(doc, dict) and "SecretBinary" in doc
                return Outcome({}, "the secret has no SecretString" + (" (it holds SecretBinary)" if has_binary
                                                                      else "")), False
        else:
            param = doc.get("Parameter") if isinstance(doc, dict) else None
            text = param.get("Value") if isinstance(param, dict) else None
            if not isinstance(text, str):
                return Outcome({}, "the answer has no Parameter.Value"), False
        return parse_secret(text), False
    code = _error_code(body, error_header) or f"HTTP {status}"
    retryable = status >= 500 or code in RETRYABLE
    return Outcome({}, f"{code}, HTTP {status}" if not code.startswith("HTTP") else code), retryable


def parse_secret(text: str) -> Outcome:
    """`key=value,...` (commas or newlines between entries, percent-decoded) or a JSON object -> headers."""
    from .otlp.config import check_headers, dropped_line, parse_headers

    stripped = text.strip()
    if stripped.startswith("{"):
        try:
            doc = json.loads(stripped)
        except ValueError as exc:
            where = f" (line {exc.lineno}, column {exc.colno})" if isinstance(exc, json.JSONDecodeError) else ""
            return Outcome({}, f"the value starts with '{{' but is not a JSON object{where}")
        if not isinstance(doc, dict):
            return Outcome({}, "the value is JSON but not an object")
        headers, dropped = check_headers(doc)
    else:
        headers, dropped = parse_headers(stripped.replace("\r\n", ",").replace("\n", ","))
    ascii_dropped = [f"header {k!r} (its value is not ASCII)" for k, v in headers.items() if not v.isascii()]
    headers = {k: v for k, v in headers.items() if v.isascii()}
    dropped += ascii_dropped
    if not headers:
        why = f": {'; '.join(dropped)}" if dropped else ""
        return Outcome({}, redact.line(f"the value holds no usable header{why}"))
    return Outcome(headers, dropped_line("the value", dropped) if dropped else None)


def _error_code(body: bytes, header: Optional[str]) -> Optional[str]:
    code = None
    try:
        doc = json.loads(body) if body else None
        if isinstance(doc, dict):
            code = doc.get("__type") or doc.get("code") or doc.get("Code")
    except ValueError:
        # a query-protocol (XML) error, as moto answers for IAM refusals: <Error><Code>AccessDenied</Code>
        start = body.find(b"<Code>")
        end = body.find(b"</Code>", start)
        if start >= 0 and 0 < end - start <= 80:
            code = body[start + 6:end].decode("ascii", "replace")
    if not code and header:
        code = header
    if not isinstance(code, str) or not code:
        return None
    code = code.rpartition("#")[2].partition(":")[0].strip()
    return redact.shorten(code, 60) if code else None


def _raw(env: Mapping[str, str], name: str) -> Optional[str]:
    v = env.get(name)
    v = str(v).strip() if v is not None else ""
    return v or None


def _arn_region(value: str, service: str) -> Optional[str]:
    parts = value.split(":")
    if len(parts) >= 6 and parts[0] == "arn" and parts[2] == service and parts[3]:
        return parts[3]
    return None


def _endpoint(env: Mapping[str, str], names: Tuple[str, ...], service: str, region: str) -> Tuple[str, Optional[str]]:
    suffix = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
    default = f"https://{service}.{region}.{suffix}/"
    for name in names:
        v = _raw(env, name)
        if v is None:
            continue
        try:
            parts = urlsplit(v)
            _ = parts.port
        except ValueError:
            parts = None
        if parts is None or parts.scheme not in ("http", "https") or not parts.hostname or "@" in parts.netloc:
            return default, (f"{name}={redact.url(v)!r} is invalid (expected an http(s)://host[:port] URL); "
                             f"using {default!r} instead")
        if parts.scheme == "http" and not _loopback(parts.hostname):
            return default, (f"{name}={redact.url(v)!r} is refused: plain http is allowed for a loopback host "
                             f"only (the answer is a secret); using {default!r} instead")
        return f"{parts.scheme}://{parts.netloc}{parts.path or '/'}", None
    return default, None


def _loopback(host: str) -> bool:
    return host == "localhost" or host == "::1" or host.startswith("127.")


def _host(url: str) -> str:
    from .aws_sigv4 import canonical_host

    return canonical_host(url)


# ---- the imperative shell ----------------------------------------------------------------------------------
Post = Callable[[Source, Dict[str, str], float], Tuple[int, bytes, Optional[str]]]


def http_post(source: Source, headers: Dict[str, str], timeout: float) -> Tuple[int, bytes, Optional[str]]:
    """One POST over TLS (or loopback http): (status, body up to MAX_RESPONSE, x-amzn-ErrorType)."""
    parts = urlsplit(source.url)
    conn: http.client.HTTPConnection
    if parts.scheme == "https":
        conn = http.client.HTTPSConnection(parts.hostname or "", parts.port or 443, timeout=timeout,
                                           context=ssl.create_default_context())
    else:
        conn = http.client.HTTPConnection(parts.hostname or "", parts.port or 80, timeout=timeout)
    try:
        conn.request("POST", parts.path or "/", body=source.body, headers=headers)
        resp = conn.getresponse()
        body = resp.read(MAX_RESPONSE + 1)
        if len(body) > MAX_RESPONSE:
            return resp.status, b"", "ResponseTooLarge"
        return resp.status, body, resp.getheader("x-amzn-ErrorType")
    finally:
        conn.close()


def fetch(source: Source, creds: Credentials, deadline: float, post: Post = http_post,
          sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.time) -> Outcome:
    """The headers of one source, retried on throttling, 5xx and network errors while the deadline allows."""
    outcome = Outcome({}, "not attempted")
    for attempt in range(MAX_ATTEMPTS):
        left = deadline - time.monotonic()
        if left <= 0.05:
            break
        try:
            status, body, err = post(source, request_headers(source, creds, clock()), min(left, ATTEMPT_TIMEOUT_S))
            outcome, retryable = parse_answer(source, status, body, err)
        except (socket.timeout, TimeoutError):
            outcome, retryable = Outcome({}, "no answer in time"), True
        except ssl.SSLError as exc:
            outcome, retryable = Outcome({}, f"TLS error ({type(exc).__name__})"), False
        except (OSError, http.client.HTTPException) as exc:
            outcome, retryable = Outcome({}, f"cannot connect ({type(exc).__name__})"), True
        if not retryable:
            return outcome
        wait = 0.2 * (2 ** attempt) * random.uniform(0.8, 1.2)
        if attempt + 1 < MAX_ATTEMPTS and time.monotonic() + wait < deadline - 0.05:
            sleep(wait)
    return outcome if outcome.headers else Outcome({}, outcome.error or "no answer in time")


class HeaderFetch:
    """The headers of every configured source, fetched once on a thread; senders wait() on it."""

    def __init__(self, sources: List[Source], creds: Optional[Credentials], problems: List[str],
                 post: Post = http_post) -> None:
        self.sources = sources
        self.names = " and ".join(s.var for s in sources) or "the OTLP header secret"
        self._creds = creds
        self._problems = problems
        self._post = post
        self._done = threading.Event()
        self.headers: Dict[str, str] = {}
        self.failed = False
        self.reason = ""
        self._thread: Optional[threading.Thread] = None

    def start(self) -> HeaderFetch:
        self._thread = threading.Thread(target=self._run, name="otel-sidecar-secrets", daemon=True)
        self._thread.start()
        return self

    def done(self) -> bool:
        return self._done.is_set()

    def wait(self, timeout: Optional[float]) -> bool:
        return self._done.wait(timeout)

    def _run(self) -> None:
        try:
            self._fetch_all()
        except Exception as exc:  # noqa: BLE001 - a bug here must not kill anything; never print its text
            self._fail(f"error in the fetch ({type(exc).__name__})", self.names)
        finally:
            self._done.set()

    def _fetch_all(self) -> None:
        for text in self._problems:
            log.warning("OTLP headers: %s", redact.line(text))
        if self._creds is None:
            self._fail("no credentials in the environment (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)",
                       self.names)
            return
        deadline = time.monotonic() + TOTAL_DEADLINE_S
        merged: Dict[str, str] = {}
        for source in self.sources:
            if not source.region:
                self._fail("could not be read (no region: AWS_REGION is not set and the value is not an ARN)",
                           f"{source.var}={redact.value(source.value)}", source.var)
                return
            outcome = fetch(source, self._creds, deadline, self._post)
            if not outcome.headers:
                self._fail(f"could not be read ({outcome.error})", f"{source.var}={redact.value(source.value)}",
                           source.var)
                return
            if outcome.error:        # some entries dropped, the rest used
                log.warning("OTLP headers: %s", redact.line(f"{source.var}: {outcome.error}"))
            merged.update(outcome.headers)
            log.info("OTLP headers from %s: %s (values not shown)", source.var, redact.header_names(outcome.headers))
        self.headers = merged

    def _fail(self, why: str, what: str, var: Optional[str] = None) -> None:
        self.failed = True
        self.reason = f"{var or self.names} could not be read"
        log.warning("OTLP headers: %s", redact.line(
            f"{what} {why}; OTLP data is dropped and counted for this environment (EMF goes on)"))


_current: Optional[HeaderFetch] = None
_lock = threading.Lock()


def configured(env: Mapping[str, str]) -> bool:
    return bool(_raw(env, SECRET_VAR) or _raw(env, SSM_VAR))


def start(env: Mapping[str, str], post: Post = http_post) -> Optional[HeaderFetch]:
    """Start the fetch this environment asks for (None when it asks for none); senders find it by current().

    Called once from the worker's one-time setup (otlp.create_sink); a second call replaces the first.
    """
    global _current
    fetch_ = None
    if configured(env):
        sources, problems = plan(env)
        fetch_ = HeaderFetch(sources, credentials(env), problems, post)
    with _lock:
        _current = fetch_
    if fetch_ is not None:
        fetch_.start()
    return fetch_


def current() -> Optional[HeaderFetch]:
    with _lock:
        return _current


def stop() -> None:
    """Forget the current fetch (tests)."""
    global _current
    with _lock:
        _current = None
