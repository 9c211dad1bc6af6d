"""python -m bench [--quick|--full] [options]: run the benchmark, write bench/results.{json,md} and plots."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any, Dict, List

from . import machine, plots, report
from .deps import ensure_layer
from .runner import FULL, QUICK, Bench, layer_size, log
from .variants import BENCH, REPO, SIDECAR, STATIC_LAYERS, VARIANTS, sidecar_layer


def parse_args(argv: List[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="a few minutes: 2 rounds x 150 invokes, 5,000-invoke soaks")
    mode.add_argument("--full", action="store_true", help="the full run (default): 5 x 500, 5,000-invoke soak")
    p.add_argument("--memory", default=None, help="comma-separated memory sizes in MB (default 128,1024)")
    p.add_argument("--variants", default=None, help="comma-separated variant keys a..g (default all)")
    p.add_argument("--no-cpu-quota", action="store_true", help="do not ask the sandbox for the CPU quota")
    p.add_argument("--phases", "--phase", dest="phases", default="latency,init,traffic,resources,logs",
                   help="comma-separated subset of latency,init,traffic,resources,logs")
    p.add_argument("--out", default=str(BENCH), help="where results.json, results.md and PNGs go (default bench/)")
    p.add_argument("--render", metavar="RESULTS_JSON", default=None,
                   help="measure nothing: re-evaluate the targets of an existing results.json and rewrite it and "
                        "the results.md next to it")
    return p.parse_args(argv)


def render(path: Path) -> int:
    """Re-evaluate targets and rewrite results.json / results.md (after a change of the report code)."""
    results = json.loads(path.read_text())
    results["targets"] = report.evaluate(results)
    results["plots"] = [str(path.parent / Path(p).name) for p in results.get("plots", [])]
    results["plots"] = [str(Path(p).relative_to(REPO)) if str(p).startswith(str(REPO)) else p
                        for p in results["plots"]]
    report.write_json(results, path)
    (path.parent / "results.md").write_text(report.markdown(results))
    log(f"rendered {path.parent / 'results.md'}")
    return 0


def main(argv: List[str]) -> int:
    args = parse_args(argv)
    if args.render:
        return render(Path(args.render))
    plan = QUICK if args.quick else FULL
    if args.memory:
        plan = replace(plan, memories=tuple(int(m) for m in args.memory.split(",")))
    if args.variants:
        keys = tuple(k.strip() for k in args.variants.split(","))
        if "a" not in keys:
            keys = ("a",) + keys  # ratios need the bare baseline
        plan = replace(plan, variants=keys)
    if args.no_cpu_quota:
        plan = replace(plan, cpu_quota=False)
    phases = {p.strip() for p in args.phases.split(",")}
    out_dir = Path(args.out)
    work = BENCH / "out"
    work.mkdir(parents=True, exist_ok=True)
    started = dt.datetime.now(dt.timezone.utc)
    log(f"{'quick' if args.quick else 'full'} run: {asdict(plan)}")
    layers: Dict[str, Path] = {SIDECAR: sidecar_layer(work)}
    log(f"sidecar layer: {layers[SIDECAR]}")
    for v in VARIANTS:
        if v.key in plan.variants and v.dep_layer and v.dep_layer not in layers:
            static = STATIC_LAYERS / v.dep_layer
            layers[v.dep_layer] = static if static.is_dir() else ensure_layer(work, v.dep_layer, log)
    bench = Bench(plan, layers, work)
    results: Dict[str, Any] = {
        "date": started.strftime("%Y-%m-%d %H:%M UTC"), "mode": "quick" if args.quick else "full",
        "commit": machine.git_commit(REPO), "machine": machine.machine(), "versions": machine.versions(),
        "plan": asdict(plan), "variants": {v.key: {"name": v.name, "description": v.description}
                                           for v in VARIANTS if v.key in plan.variants},
        "runs": {}, "layer": layer_size(layers[SIDECAR]),
    }
    for mem in plan.memories:
        run: Dict[str, Any] = {}
        if "latency" in phases:
            run["latency"] = bench.latency(mem)
        if "init" in phases:
            run["init"] = bench.init(mem)
        if "traffic" in phases:
            run["traffic"] = bench.traffic(mem)
        results["runs"][str(mem)] = run
    if "resources" in phases:
        log(f"sidecar resources: soak of {plan.soak} invocations at {plan.soak_memory} MB")
        results["resources"] = bench.resources("b")
        if "e" in plan.variants:
            log(f"sidecar resources with a stalled endpoint: soak of {plan.soak} invocations")
            results["resources_stalled"] = bench.resources("e")
    if "logs" in phases:
        log(f"log ingest ladder at {plan.soak_memory} MB: {list(plan.log_steps)} lines per invoke")
        results["log_ingest"] = bench.log_ingest()
        log(f"listener ingest at {plan.soak_memory} MB: batches of 1,000 records at {list(plan.ingest_rates)} /s")
        results["listener_ingest"] = bench.listener_ingest()
    results["applied"] = bench.applied
    results["loadavg_end"] = list(os.getloadavg())   # other work on the machine shows up here
    results["elapsed_s"] = round((dt.datetime.now(dt.timezone.utc) - started).total_seconds(), 1)
    results["targets"] = report.evaluate(results)
    out_dir.mkdir(parents=True, exist_ok=True)
    made: List[str] = []
    if plots.available():
        for mem, run in results["runs"].items():
            if run.get("latency"):
                made.append(str(plots.latency_plot(run, mem, out_dir / f"latency_{mem}mb.png")))
        soaks = [results[k] for k in ("resources", "resources_stalled") if results.get(k, {}).get("rss_series_kb")]
        if soaks:
            made.append(str(plots.rss_plot(soaks, out_dir / "sidecar_rss.png")))
    else:
        log("matplotlib is not installed (pip install -e '.[bench]'): no plots")
    results["plots"] = [str(Path(p).relative_to(REPO)) if Path(p).is_relative_to(REPO) else p for p in made]
    # raw samples are large: results.json keeps summaries, bench/out/samples.json the raw values
    samples = {mem: {"latency": run.get("latency", {}).pop("samples", None),
                     "init": run.get("init", {}).pop("samples", None)} for mem, run in results["runs"].items()}
    (work / "samples.json").write_text(json.dumps(samples))
    report.write_json(results, out_dir / "results.json")
    (out_dir / "results.md").write_text(report.markdown(results))
    missed = [r for r in results["targets"] if r["met"] is False and not r["target"].startswith("(context)")]
    log(f"done in {results['elapsed_s']} s: {out_dir / 'results.md'}; targets missed: {len(missed)}")
    for r in missed:
        log(f"  MISSED {r['target']} ({r['where']}): {r['measured']}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
