import itertools

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import DatabaseError, connection, transaction
from hypothesis import given, settings
from hypothesis import strategies as st

from apps.audit.hashing import GENESIS_HASH, jsonable
from apps.audit.models import AuditEvent
from apps.audit.selectors import audit_chain_verify
from apps.audit.services import audit_record

pytestmark = pytest.mark.django_db


def _seed(n: int = 5) -> list[AuditEvent]:
    return [
        audit_record(action="test.event", object_type="thing", object_id=i, after={"i": i})
        for i in range(n)
    ]


def _without_triggers(sql: str, params: list[str] | None = None) -> None:
    """What a DBA with superuser rights could do: bypass the append-only triggers."""
    with connection.cursor() as cur:
        cur.execute("ALTER TABLE audit_auditevent DISABLE TRIGGER USER")
        cur.execute(sql, params or [])
        cur.execute("ALTER TABLE audit_auditevent ENABLE TRIGGER USER")


def test_records_form_a_chain_and_verify() -> None:
    events = _seed(4)
    assert events[0].seq == 1
    assert events[0].prev_hash == GENESIS_HASH
    for prev, cur in itertools.pairwise(events):
        assert cur.seq == prev.seq + 1
        assert cur.prev_hash == prev.hash
    result = audit_chain_verify()
    assert result.ok
    assert result.checked == 4
    assert result.head_hash == events[-1].hash
    assert events[0].created_at.microsecond % 1000 == 0  # millisecond precision, as hashed


def test_update_is_refused_by_the_database() -> None:
    event = _seed(1)[0]
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        AuditEvent.objects.filter(pk=event.pk).update(action="tampered")
    with (
        pytest.raises(DatabaseError, match="append-only"),
        transaction.atomic(),
        connection.cursor() as cur,
    ):
        cur.execute("UPDATE audit_auditevent SET action = 'x' WHERE seq = %s", [event.seq])
    event.refresh_from_db()
    assert event.action == "test.event"


def test_delete_is_refused_by_the_database() -> None:
    event = _seed(2)[0]
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        AuditEvent.objects.filter(pk=event.pk).delete()
    assert AuditEvent.objects.count() == 2


def test_insert_that_does_not_extend_the_head_is_refused() -> None:
    head = _seed(2)[-1]
    with pytest.raises(DatabaseError, match="does not extend"), transaction.atomic():
        AuditEvent.objects.create(
            seq=head.seq + 5,
            created_at=head.created_at,
            action="forged",
            prev_hash=head.hash,
            hash="f" * 64,
        )
    with pytest.raises(DatabaseError, match="does not extend"), transaction.atomic():
        AuditEvent.objects.create(
            seq=head.seq + 1,
            created_at=head.created_at,
            action="forged",
            prev_hash="0" * 64,
            hash="e" * 64,
        )


def test_edited_record_is_detected_and_named() -> None:
    _seed(5)
    _without_triggers("UPDATE audit_auditevent SET after = %s::jsonb WHERE seq = 3", ['{"i": 999}'])
    result = audit_chain_verify()
    assert not result.ok
    assert result.broken_seq == 3
    assert "edited" in (result.problem or "")
    with pytest.raises(CommandError, match="#3"):
        call_command("verify_audit_chain")


def test_reordered_records_are_detected() -> None:
    _seed(5)
    _without_triggers("UPDATE audit_auditevent SET seq = -2 WHERE seq = 2")
    _without_triggers("UPDATE audit_auditevent SET seq = 2 WHERE seq = 4")
    _without_triggers("UPDATE audit_auditevent SET seq = 4 WHERE seq = -2")
    result = audit_chain_verify()
    assert not result.ok
    assert result.broken_seq == 2
    assert "reordered" in (result.problem or "")


def test_deleted_record_is_detected() -> None:
    _seed(5)
    _without_triggers("DELETE FROM audit_auditevent WHERE seq = 2")
    result = audit_chain_verify()
    assert not result.ok
    assert result.broken_seq == 3
    assert "gap" in (result.problem or "")


def test_verify_command_reports_ok(capsys: pytest.CaptureFixture[str]) -> None:
    _seed(3)
    call_command("verify_audit_chain")
    assert "Audit chain OK: 3 records" in capsys.readouterr().out


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text() | st.decimals(allow_nan=False),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=8,
)


@settings(max_examples=60, deadline=None)
@given(payload=st.dictionaries(st.text(max_size=8), json_values, max_size=4))
def test_any_payload_round_trips_through_jsonb_and_verifies(payload: dict[str, object]) -> None:
    with transaction.atomic():
        sid = transaction.savepoint()
        event = audit_record(action="prop", after=payload)
        stored = AuditEvent.objects.get(pk=event.pk)
        assert stored.after == jsonable(payload)
        assert audit_chain_verify().ok
        transaction.savepoint_rollback(sid)
