"""The matching worker: the engine run as the platform's matching service (Django-free).

Modules: ``resp`` (a small fast Redis client), ``journal`` (append-only checksummed segments,
group commit), ``snapshots`` (atomic state files), ``dedupe`` (window of applied command ids),
``codec`` (input JSON -> journal records -> engine calls), ``marketdata``, ``runner`` (the loop,
recovery, health) and ``cli``. Run with ``python -m apps.matching.worker --help``; the wire
protocol is documented in ``apps.matching.protocol``.
"""
