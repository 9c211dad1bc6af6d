"""Benchmark harness (not tests): the sidecar side by side with the bare function and the in-process alternatives.

Run with `./dev bench` or `python -m bench [--quick]`; writes bench/results.json, bench/results.md and PNG plots.
"""
