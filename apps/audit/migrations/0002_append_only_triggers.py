"""Make the audit log append-only in the database itself.

- UPDATE and DELETE raise, whatever the client (ORM, psql, admin).
- INSERT must extend the chain: seq = head + 1 and prev_hash = head's hash.
TRUNCATE is not blocked (test isolation relies on it); production roles should not hold the
TRUNCATE privilege, and the end-of-day job anchors the head hash elsewhere.
"""

from django.db import migrations

FORWARD = r"""
CREATE OR REPLACE FUNCTION audit_event_refuse_change() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'audit_auditevent is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER audit_event_no_update_delete
    BEFORE UPDATE OR DELETE ON audit_auditevent
    FOR EACH ROW EXECUTE FUNCTION audit_event_refuse_change();

CREATE OR REPLACE FUNCTION audit_event_extend_chain() RETURNS trigger AS $$
DECLARE
    head_seq bigint;
    head_hash varchar(64);
BEGIN
    SELECT seq, hash INTO head_seq, head_hash FROM audit_auditevent ORDER BY seq DESC LIMIT 1;
    IF head_seq IS NULL THEN
        IF NEW.seq <> 1 OR NEW.prev_hash <> repeat('0', 64) THEN
            RAISE EXCEPTION 'audit chain must start at seq 1 with the genesis hash';
        END IF;
    ELSIF NEW.seq <> head_seq + 1 OR NEW.prev_hash <> head_hash THEN
        RAISE EXCEPTION 'audit insert does not extend the chain head (#%)', head_seq;
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER audit_event_chain_insert
    BEFORE INSERT ON audit_auditevent
    FOR EACH ROW EXECUTE FUNCTION audit_event_extend_chain();
"""

BACKWARD = r"""
DROP TRIGGER IF EXISTS audit_event_chain_insert ON audit_auditevent;
DROP TRIGGER IF EXISTS audit_event_no_update_delete ON audit_auditevent;
DROP FUNCTION IF EXISTS audit_event_extend_chain();
DROP FUNCTION IF EXISTS audit_event_refuse_change();
"""


class Migration(migrations.Migration):
    dependencies = [("audit", "0001_initial")]

    operations = [migrations.RunSQL(FORWARD, BACKWARD)]
