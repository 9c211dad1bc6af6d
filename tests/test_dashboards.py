"""Every metric a dashboard queries is one the sidecar emits (catalog.py), under that exact name and unit."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Dict, List, Set, Tuple

import pytest
from otel_sidecar import catalog
from otel_sidecar.config import DEFAULT_NAMESPACE

DASHBOARDS = Path(__file__).resolve().parents[1] / "collector-config" / "dashboards"
GRAFANA = sorted(DASHBOARDS.glob("grafana-*.json"))
CLOUDWATCH = sorted(DASHBOARDS.glob("cloudwatch-*.json"))

# OpenTelemetry -> Prometheus translation (as Prometheus' OTLP receiver, Mimir and the collector's
# prometheus exporters do it): units become suffixes, annotations in braces are dropped, counters get _total.
_UNIT_SUFFIX = {"s": "seconds", "ms": "milliseconds", "By": "bytes", "%": "percent", "1": "ratio"}
# Grafana units a panel may declare for a metric of each OTLP unit (counts may be shown as rates or ratios).
_GRAFANA_UNITS = {"s": {"s"}, "By": {"bytes", "decbytes"}, "%": {"percent"}, "{USD}": {"currencyUSD"}}
_COUNT_UNITS = {"short", "none", "reqps", "ops", "percentunit"}
# AWS's own metrics a CloudWatch dashboard may show next to ours (the sidecar cannot see Lambda throttles).
_AWS_LAMBDA = {"Throttles": "Count", "ConcurrentExecutions": "Count"}


def prometheus_series(m: catalog.Metric) -> Set[str]:
    name = re.sub(r"[^a-zA-Z0-9_:]", "_", m.otlp_name)
    suffix = _UNIT_SUFFIX.get(m.otlp_unit)
    if suffix and suffix not in name.split("_"):
        name += "_" + suffix
    if m.kind == catalog.COUNTER:
        return {name + "_total"}
    if m.kind == catalog.HISTOGRAM:
        return {name + "_bucket", name + "_sum", name + "_count"}
    return {name}


PROM: Dict[str, catalog.Metric] = {s: m for m in catalog.otlp_instruments() for s in prometheus_series(m)}


def test_translation_matches_known_names():
    assert prometheus_series(catalog.BY_KEY["invocations"]) == {"faas_invocations_total"}
    assert "faas_invoke_duration_seconds_bucket" in prometheus_series(catalog.BY_KEY["invoke_duration"])
    assert "faas_mem_usage_bytes_bucket" in prometheus_series(catalog.BY_KEY["max_memory_used"])
    assert "aws_lambda_produced_bytes_bucket" in prometheus_series(catalog.BY_KEY["produced_bytes"])


def _panels(dash):
    for p in dash.get("panels", []):
        yield p
        yield from p.get("panels", [])


def grafana_problems(dash) -> Tuple[List[str], Set[str]]:
    """(problems, catalog keys queried) of a Grafana dashboard's Prometheus queries."""
    problems: List[str] = []
    queried: Set[str] = set()
    for panel in _panels(dash):
        unit = (panel.get("fieldConfig") or {}).get("defaults", {}).get("unit")
        for target in panel.get("targets", []):
            if target.get("datasource", {}).get("type") != "prometheus":
                continue
            expr = target["expr"]
            names = set(re.findall(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{", expr))
            names |= set(re.findall(r"\b((?:faas|aws_lambda|otel_sidecar)_[a-zA-Z0-9_:]*)", expr))
            if not names:
                problems.append(f"panel {panel['title']!r}: no metric in {expr!r}")
            for name in sorted(names):
                if name not in PROM:
                    problems.append(f"panel {panel['title']!r} queries {name!r}, which the sidecar does not emit")
                    continue
                metric = PROM[name]
                allowed = _GRAFANA_UNITS.get(metric.otlp_unit, _COUNT_UNITS)
                if unit not in allowed:
                    problems.append(f"panel {panel['title']!r}: unit {unit!r} but {name} is {metric.otlp_unit!r} "
                                    f"(expected one of {sorted(allowed)})")
                queried.add(metric.key)
    return problems, queried


@pytest.mark.parametrize("path", GRAFANA, ids=lambda p: p.name)
def test_grafana_queries_only_emitted_metrics_with_their_units(path):
    dash = json.loads(path.read_text())
    problems, queried = grafana_problems(dash)
    assert not problems, f"{path.name}: " + "; ".join(problems)
    # the core signals are on the dashboard
    assert {"invocations", "errors", "duration", "coldstarts", "init_duration", "timeouts", "downstream_throttles",
            "post_runtime_duration", "dropped", "export_failures"} <= queried
    assert any(t.get("datasource", {}).get("type") == "tempo" for p in _panels(dash) for t in p.get("targets", []))


def test_the_grafana_check_rejects_a_wrong_name_or_unit():
    def dash(expr, unit):
        return {"panels": [{"title": "p", "fieldConfig": {"defaults": {"unit": unit}},
                            "targets": [{"expr": expr, "datasource": {"type": "prometheus"}}]}]}

    assert grafana_problems(dash('sum(rate(faas_invocations_total{job="x"}[5m]))', "reqps"))[0] == []
    assert grafana_problems(dash('sum(rate(faas_invocation_total{job="x"}[5m]))', "reqps"))[0]      # name
    assert grafana_problems(dash('histogram_quantile(0.9, rate(faas_init_duration_seconds_bucket[5m]))', "ms"))[0]
    assert grafana_problems(dash('rate(aws_lambda_duration_milliseconds_bucket[5m])', "s"))[0]     # unit suffix


@pytest.mark.parametrize("path", CLOUDWATCH, ids=lambda p: p.name)
def test_cloudwatch_queries_only_emitted_metrics_with_their_units(path):
    dash = json.loads(path.read_text())
    seen = set()
    for widget in dash["widgets"]:
        if widget["type"] != "metric":
            continue
        props = widget["properties"]
        unit = props["yAxis"]["left"]["label"]
        for row in props["metrics"]:
            namespace, name = row[0], row[1]
            seen.add((namespace, name))
            if namespace == "AWS/Lambda":
                assert name in _AWS_LAMBDA and _AWS_LAMBDA[name] == unit, (props["title"], name)
                continue
            assert namespace == DEFAULT_NAMESPACE, f"{props['title']!r}: namespace {namespace!r}"
            assert name in catalog.BY_EMF_NAME, f"{path.name} widget {props['title']!r} queries {name!r}, which " \
                                                "the sidecar does not emit (catalog.py)"
            assert catalog.BY_EMF_NAME[name].emf_unit == unit, \
                f"{props['title']!r}: {name} is {catalog.BY_EMF_NAME[name].emf_unit}, the axis says {unit}"
            assert row[2:4] == ["FunctionName", row[3]]   # the sidecar's dimension set
    # Lambda's own throttles are only visible from AWS/Lambda: the dashboard must show them
    assert ("AWS/Lambda", "Throttles") in seen
    assert {("OtelSidecar", "Invocations"), ("OtelSidecar", "DownstreamThrottles")} <= seen
