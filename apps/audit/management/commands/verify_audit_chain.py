from typing import Any

from django.core.management.base import BaseCommand, CommandError

from apps.audit.selectors import audit_chain_verify


class Command(BaseCommand):
    help = "Recompute the audit log's hash chain and name the first broken record."

    def handle(self, *args: Any, **options: Any) -> None:
        result = audit_chain_verify()
        if not result.ok:
            raise CommandError(
                f"Audit chain BROKEN at record #{result.broken_seq}: {result.problem}. "
                f"{result.checked} records before it verified."
            )
        self.stdout.write(
            self.style.SUCCESS(
                f"Audit chain OK: {result.checked} records, head #{result.head_seq} "
                f"hash {result.head_hash}"
            )
        )
