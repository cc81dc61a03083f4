"""Benchmarks for the matching engine (see engine_bench.py)."""
