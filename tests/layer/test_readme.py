"""The README documents every variable and every metric the code has, and the two commands that exist."""

from __future__ import annotations

import re
from pathlib import Path

from otel_sidecar import catalog
from otel_sidecar.config import VARIABLES
from otel_sidecar.otlp import config as otlp_config

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def test_every_sidecar_and_otel_variable_is_in_the_configuration_table():
    names = {name for name, _, _ in VARIABLES}
    for module in ("otlp/config.py", "budget.py", "aws_secrets.py"):
        names |= set(re.findall(r"\b(?:SIDECAR|OTEL)_[A-Z_]+\b", (ROOT / "extension/otel_sidecar" / module).read_text()))
    names |= set(otlp_config.CONFIG_VARS) - {"OPENTELEMETRY_COLLECTOR_CONFIG_FILE"}
    names -= {"OTEL_EXPORTER_OTLP"}     # a prefix the code assembles per signal, documented as _{SIGNAL}_
    for launcher in ("otel-sidecar", "bootstrap.py"):
        names |= set(re.findall(r"\bSIDECAR_[A-Z_]+\b", (ROOT / "layer" / launcher).read_text()))
    missing = sorted(n for n in names if n not in README)
    assert not missing, f"README lacks: {missing}"


def test_every_metric_is_in_the_signals_reference():
    for m in catalog.METRICS:
        assert f"`{m.emf_name}` ({m.emf_unit})" in README, m.emf_name
        assert f"`{m.otlp_name}` ({m.otlp_unit})" in README, m.otlp_name


def test_the_two_commands_exist():
    dev = (ROOT / "dev").read_text()
    assert "./dev demo" in README and "./dev test" in README
    assert re.search(r"^\s*demo\)", dev, re.M) and re.search(r"^\s*test\)", dev, re.M)
    assert "exec ./dev test" in (ROOT / ".ci" / "run").read_text()
