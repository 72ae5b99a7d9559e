"""Throughput, latency and scale benchmarks: `make bench` (see benchmarks/run.py)."""
