from django.db import models


class AuditEvent(models.Model):
    """One record of the append-only, hash-chained audit log.

    `hash` = sha256 over the canonical serialisation of every other column including `prev_hash`,
    so editing any record breaks its own hash and reordering or deleting breaks the chain.
    The database refuses UPDATE and DELETE on this table and refuses an INSERT that does not extend
    the chain head (see migration 0002); `verify_audit_chain` recomputes everything.
    """

    seq = models.BigIntegerField(primary_key=True)
    created_at = models.DateTimeField()
    actor_id = models.BigIntegerField(null=True, blank=True)
    actor_repr = models.CharField(max_length=254, blank=True)
    action = models.CharField(max_length=64, db_index=True)
    object_type = models.CharField(max_length=64, blank=True)
    object_id = models.CharField(max_length=64, blank=True)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64, unique=True)

    class Meta:
        ordering = ["-seq"]
        indexes = [
            models.Index(fields=["actor_id", "-seq"]),
            models.Index(fields=["object_type", "object_id"]),
        ]

    def __str__(self) -> str:
        return f"#{self.seq} {self.action} by {self.actor_repr or 'system'}"
