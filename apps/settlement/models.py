"""Settlement state: how far each matcher shard's event stream has been applied.

The cursor is the idempotency key of settlement: events are applied strictly in sequence order,
in one transaction per batch that also advances the cursor, so an event with seq <= last_seq has
been applied exactly once and is skipped when it is delivered again. (`Fill` additionally has a
unique (shard, engine_seq, order) constraint as a second line of defence.)
"""

from django.db import models


class SettlementCursor(models.Model):
    shard = models.PositiveSmallIntegerField(primary_key=True)
    last_seq = models.BigIntegerField(default=0, help_text="Last engine seq applied.")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["shard"]

    def __str__(self) -> str:
        return f"shard {self.shard} @ {self.last_seq}"
