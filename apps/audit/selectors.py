from collections.abc import Iterator
from dataclasses import dataclass

from apps.audit.hashing import GENESIS_HASH, compute_hash
from apps.audit.models import AuditEvent


@dataclass(frozen=True)
class ChainVerification:
    ok: bool
    checked: int
    head_seq: int | None
    head_hash: str | None
    broken_seq: int | None = None
    problem: str | None = None


def audit_events_in_order(*, chunk_size: int = 5000) -> Iterator[AuditEvent]:
    return AuditEvent.objects.order_by("seq").iterator(chunk_size=chunk_size)


def audit_chain_verify() -> ChainVerification:
    """Recompute the whole chain and name the first record that does not fit."""
    expected_seq = 1
    prev_hash = GENESIS_HASH
    checked = 0
    for event in audit_events_in_order():
        problem: str | None = None
        if event.seq != expected_seq:
            problem = (
                f"sequence gap: expected #{expected_seq}, found #{event.seq} "
                "(records deleted or renumbered)"
            )
        elif event.prev_hash != prev_hash:
            problem = "prev_hash does not match the previous record's hash (chain reordered)"
        else:
            recomputed = compute_hash(
                seq=event.seq,
                created_at=event.created_at,
                actor_id=event.actor_id,
                actor_repr=event.actor_repr,
                action=event.action,
                object_type=event.object_type,
                object_id=event.object_id,
                before=event.before,
                after=event.after,
                ip=event.ip,
                prev_hash=event.prev_hash,
            )
            if recomputed != event.hash:
                problem = "hash does not match the record's content (record edited)"
        if problem is not None:
            return ChainVerification(
                ok=False,
                checked=checked,
                head_seq=expected_seq - 1 or None,
                head_hash=prev_hash if checked else None,
                broken_seq=event.seq,
                problem=problem,
            )
        checked += 1
        expected_seq += 1
        prev_hash = event.hash
    return ChainVerification(
        ok=True,
        checked=checked,
        head_seq=checked or None,
        head_hash=prev_hash if checked else None,
    )
