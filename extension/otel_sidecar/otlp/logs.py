"""LogSignal -> an OTLP log record (serialized at once into the logs buffer), in its invocation's trace."""

from __future__ import annotations

import time
from typing import Any, Dict, Tuple

from .. import budget as _budget
from ..signals import LogSignal
from . import encode
from .buffer import SignalBuffer
from .counts import SinkCounters
from .spans import TraceIdRegistry, ns

SEVERITY = {"TRACE": 1, "DEBUG": 5, "INFO": 9, "WARN": 13, "WARNING": 13, "ERROR": 17, "FATAL": 21,
            "CRITICAL": 21}
MAX_CACHED_ATTRIBUTES = 64


class LogMapper:
    """Log records with log.source, faas.invocation_id and the invocation's trace/span ids; bodies and
    attribute values cut to the budget's limits (budget.log_limits), never buffered whole."""

    def __init__(self, logs: SignalBuffer, ids: TraceIdRegistry, counters: SinkCounters, body_max: int,
                 attr_limit: int) -> None:
        self.logs = logs
        self.ids = ids
        self.counters = counters
        self.body_max = body_max
        self.attr_limit = attr_limit
        self._attrs: Dict[Tuple[str, Any], bytes] = {}

    def log(self, sig: LogSignal) -> None:
        level = (sig.level or "").upper() or None
        extra = [self._attribute("log.source", sig.source or "function")]
        rid = sig.request_id
        trace_id = span_id = None
        sampled = False
        if rid:
            extra.append(self._attribute("faas.invocation_id", rid))
            ids = self.ids.ids_for(rid, sig.trace, sig.invoke_tracing_value)
            trace_id, span_id, sampled = ids.trace_id, ids.span_id, ids.sampled
        tenant = getattr(sig, "tenant_id", None)
        if tenant:   # tenant isolation: the record's tenantId, else the environment's (signals.py)
            extra.append(self._attribute("aws.lambda.tenant_id", tenant))
        body, cut = _budget.truncate_utf8(sig.text, self.body_max)
        if cut:
            extra.append(self._attribute(_budget.TRUNCATED_KEY, True))
            self.counters.count("logs_truncated", 1)
        self.logs.add(encode.log_record(
            ns(sig.time), time.time_ns(), body, SEVERITY.get(level or "", 0), level, {},
            trace_id, span_id, sampled, extra=extra))

    def _attribute(self, key: str, value: Any) -> bytes:
        """Serialized once per value: an invocation's lines share their request id, every line its source."""
        cache = self._attrs
        kv = cache.get((key, value))
        if kv is None:
            if len(cache) >= MAX_CACHED_ATTRIBUTES:
                cache.clear()
            kv = cache[(key, value)] = encode.log_attribute(
                key, _budget.truncate_value(value, self.attr_limit) if isinstance(value, str) else value)
        return kv
