"""PNG plots of the latency distributions and the sidecar's RSS over the soak (matplotlib, optional)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List


def available() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def latency_plot(run: Dict[str, Any], memory_mb: str, path: Path) -> Path:
    """Empirical CDF (log x) of caller-observed latency per variant."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lat = run["latency"]
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=110)
    for key, samples in lat["samples"].items():
        if not samples:
            continue
        xs = sorted(samples)
        ys = [(i + 1) / len(xs) for i in range(len(xs))]
        name = lat["variants"][key]["name"]
        ax.step(xs, ys, where="post", label=f"({key}) {name}  p50 {lat['variants'][key]['latency_ms']['p50']:.2f} ms")
    ax.set_xscale("log")
    ax.set_xlabel("caller-observed latency (ms, log scale)")
    ax.set_ylabel("fraction of invocations")
    ax.set_title(f"Caller-observed latency, {memory_mb} MB, trivial handler")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def rss_plot(runs: List[Dict[str, Any]], path: Path) -> Path:
    """Sidecar RSS against invocations, one line per soak (healthy and stalled endpoint)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.5), dpi=110)
    for res in runs:
        series: List = [p for p in res.get("rss_series_kb", []) if p[1] is not None]
        ax.plot([p[0] for p in series], [p[1] / 1024 for p in series], marker=".",
                label=f"({res.get('variant')}) {res.get('name')}")
    ax.legend(fontsize=8)
    ax.set_xlabel("invocations after warm-up")
    ax.set_ylabel("sidecar RSS (MB)")
    ax.set_title("otel-sidecar resident memory over the soak")
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
