"""The window of applied command ids (exactly-once application of re-delivered commands).

An id stays in the window until ``max_ids`` newer ids have been added or its batch's journal
stamp is more than ``max_age_ns`` older than the newest batch, whichever comes first. Memory is
bounded by ``max_ids`` (~130 bytes per id of 40-50 characters: ~130 MB for the default million).

The window is a pure function of the journaled batches (ids and stamps), so replaying the
journal after a snapshot rebuilds exactly the window the worker had: the live path and replay
both call ``add_batch`` with the same arguments, and membership is only ever tested before a
batch is journaled.
"""

from __future__ import annotations

import marshal
from collections import deque
from collections.abc import Iterable
from typing import Final

DEFAULT_MAX_IDS: Final = 1_000_000
DEFAULT_MAX_AGE_NS: Final = 24 * 3600 * 1_000_000_000
_MARSHAL_VERSION: Final = 4


class DedupeWindow:
    __slots__ = ("_ids", "_order", "_runs", "max_age_ns", "max_ids")

    def __init__(
        self, *, max_ids: int = DEFAULT_MAX_IDS, max_age_ns: int = DEFAULT_MAX_AGE_NS
    ) -> None:
        if max_ids < 1:
            raise ValueError("max_ids must be >= 1")
        self.max_ids = max_ids
        self.max_age_ns = max_age_ns
        self._ids: set[bytes] = set()
        self._order: deque[bytes] = deque()  # ids, oldest first
        self._runs: deque[list[int]] = deque()  # [batch stamp, ids of that batch still held]

    def __contains__(self, command_id: bytes) -> bool:
        return command_id in self._ids

    def __len__(self) -> int:
        return len(self._ids)

    def isdisjoint(self, ids: Iterable[bytes]) -> bool:
        """None of ``ids`` was applied (one C-level pass)."""
        return self._ids.isdisjoint(ids)

    def add_batch(self, ts: int, ids: list[bytes]) -> None:
        """Record the ids of one journaled batch (stamp ``ts``), then evict what fell out."""
        held = self._ids
        order = self._order
        if held.isdisjoint(ids) and len(set(ids)) == len(ids):
            held.update(ids)  # the usual case, at C speed
            order.extend(ids)
            n = len(ids)
        else:
            n = 0
            for cid in ids:
                if cid not in held:
                    held.add(cid)
                    order.append(cid)
                    n += 1
        if n:
            self._runs.append([ts, n])
        runs = self._runs
        excess = len(order) - self.max_ids
        while excess > 0:
            run = runs[0]
            k = min(run[1], excess)
            for _ in range(k):
                held.discard(order.popleft())
            excess -= k
            run[1] -= k
            if not run[1]:
                runs.popleft()
        horizon = ts - self.max_age_ns
        while runs and runs[0][0] < horizon:
            for _ in range(runs.popleft()[1]):
                held.discard(order.popleft())

    def dump(self) -> bytes:
        """Snapshot form (marshal: ids are bytes, stamps ints)."""
        return marshal.dumps(
            (self.max_ids, self.max_age_ns, list(self._order), [tuple(r) for r in self._runs]),
            _MARSHAL_VERSION,
        )

    @classmethod
    def load(cls, data: bytes, *, max_ids: int, max_age_ns: int) -> DedupeWindow:
        """Rebuild from ``dump``; the configured limits apply from the next batch on."""
        # Written by this module into a checksummed snapshot, never read from the network.
        _ids, _age, order, runs = marshal.loads(data)  # noqa: S302
        window = cls(max_ids=max_ids, max_age_ns=max_age_ns)
        window._order = deque(order)
        window._ids = set(order)
        window._runs = deque([list(r) for r in runs])
        if len(window._ids) != len(order) or sum(r[1] for r in runs) != len(order):
            raise ValueError("inconsistent de-duplication window in snapshot")
        return window
