"""Writes to the audit log.

Locking: `audit_record` takes a transaction-scoped advisory lock (AUDIT_CHAIN_LOCK) so that chain
extension is serialised. It must be the *last* lock a transaction takes (after cash account →
position → order), and the lock is held until that transaction commits, so keep audited
transactions short.
"""

import datetime as dt
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from apps.audit.hashing import GENESIS_HASH, compute_hash, jsonable
from apps.audit.models import AuditEvent

AUDIT_CHAIN_LOCK = 0x41554454  # "AUDT"


def _now_ms() -> dt.datetime:
    now = timezone.now()
    return now.replace(microsecond=(now.microsecond // 1000) * 1000)


def audit_record(
    *,
    action: str,
    actor: Any = None,
    obj: Any = None,
    object_type: str = "",
    object_id: str | int = "",
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    ip: str | None = None,
) -> AuditEvent:
    """Append one event to the chain inside the caller's transaction (or a new one).

    `actor` is a user (or None for the system); `obj` is a model instance whose type and pk are
    recorded, unless `object_type` / `object_id` are given explicitly.
    """
    if obj is not None:
        object_type = object_type or f"{obj._meta.app_label}.{obj._meta.model_name}"
        object_id = object_id or str(obj.pk)
    actor_id = getattr(actor, "pk", None) if actor is not None else None
    actor_repr = str(getattr(actor, "email", "") or actor or "") if actor is not None else ""
    before_n = jsonable(before) if before is not None else None
    after_n = jsonable(after) if after is not None else None

    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [AUDIT_CHAIN_LOCK])
        head = AuditEvent.objects.order_by("-seq").values_list("seq", "hash").first()
        seq, prev_hash = (head[0] + 1, head[1]) if head else (1, GENESIS_HASH)
        created_at = _now_ms()
        fields: dict[str, Any] = {
            "seq": seq,
            "created_at": created_at,
            "actor_id": actor_id,
            "actor_repr": actor_repr[:254],
            "action": action,
            "object_type": object_type,
            "object_id": str(object_id),
            "before": before_n,
            "after": after_n,
            "ip": ip,
            "prev_hash": prev_hash,
        }
        event = AuditEvent(**fields, hash=compute_hash(**fields))
        event.save(force_insert=True)
    return event
