"""Matching: the exchange side of the brokerage.

``apps.matching.engine`` is the pure, deterministic order-book core (standard library only);
``apps.matching.worker`` runs it as the platform's matching service (Redis Streams in, journal,
snapshots, Redis Streams out; Django-free), with its wire protocol in ``apps.matching.protocol``
and ``manage.py run_matcher`` as the entry point; ``apps.matching.benchmarks`` holds the engine
and worker benchmarks.
"""
