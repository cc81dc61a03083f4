"""Matching: the exchange side of the brokerage.

``apps.matching.engine`` is the pure, deterministic order-book core (standard library
only); ``apps.matching.benchmarks`` holds its throughput/latency benchmark.
"""
