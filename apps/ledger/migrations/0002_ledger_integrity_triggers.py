"""Make the ledger's core rules hold in the database itself, whatever the client (ORM, psql).

1. Postings and posting lines are immutable: UPDATE and DELETE raise.
2. Every posting is balanced: at COMMIT, a deferred constraint trigger (fired for each inserted
   posting and line) checks that the posting has at least two lines and that its lines sum to
   zero per currency. An unbalanced posting makes the COMMIT itself fail.
3. A line carries its account's currency.
4. Lines can only be added in the transaction that created their posting (`created_txid`, set
   by a trigger, is compared with the current top-level transaction id), so a balanced posting
   cannot later be extended, even by a balanced pair.

TRUNCATE is not blocked (test isolation relies on it, as for the audit log); production roles
should not hold the TRUNCATE privilege.
"""

from django.db import migrations

FORWARD = r"""
CREATE OR REPLACE FUNCTION ledger_refuse_change() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION '% is immutable: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER ledger_posting_immutable
    BEFORE UPDATE OR DELETE ON ledger_posting
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();

CREATE TRIGGER ledger_postingline_immutable
    BEFORE UPDATE OR DELETE ON ledger_postingline
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();

-- Not a model field: the ORM never reads or writes it.
ALTER TABLE ledger_posting ADD COLUMN created_txid bigint NOT NULL DEFAULT txid_current();

CREATE OR REPLACE FUNCTION ledger_posting_stamp_txid() RETURNS trigger AS $$
BEGIN
    NEW.created_txid := txid_current();
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER ledger_posting_stamp_txid
    BEFORE INSERT ON ledger_posting
    FOR EACH ROW EXECUTE FUNCTION ledger_posting_stamp_txid();

CREATE OR REPLACE FUNCTION ledger_postingline_check_insert() RETURNS trigger AS $$
DECLARE
    account_currency varchar(3);
    posting_txid bigint;
BEGIN
    SELECT currency INTO account_currency FROM ledger_cashaccount WHERE id = NEW.account_id;
    IF account_currency IS DISTINCT FROM NEW.currency THEN
        RAISE EXCEPTION 'ledger line in % on cash account #% which is in %',
            NEW.currency, NEW.account_id, account_currency
            USING ERRCODE = 'check_violation';
    END IF;
    SELECT created_txid INTO posting_txid FROM ledger_posting WHERE id = NEW.posting_id;
    IF posting_txid IS DISTINCT FROM txid_current() THEN
        RAISE EXCEPTION 'posting #% is closed: lines can only be added by the transaction that created it',
            NEW.posting_id
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER ledger_postingline_check_insert
    BEFORE INSERT ON ledger_postingline
    FOR EACH ROW EXECUTE FUNCTION ledger_postingline_check_insert();

CREATE OR REPLACE FUNCTION ledger_posting_check_balanced() RETURNS trigger AS $$
DECLARE
    pid bigint;
    line_count integer;
    bad_currency varchar(3);
BEGIN
    IF TG_TABLE_NAME = 'ledger_posting' THEN
        pid := NEW.id;
    ELSE
        pid := NEW.posting_id;
    END IF;
    SELECT count(*) INTO line_count FROM ledger_postingline WHERE posting_id = pid;
    IF line_count < 2 THEN
        RAISE EXCEPTION 'ledger posting #% has % line(s); at least 2 are required', pid, line_count
            USING ERRCODE = 'check_violation';
    END IF;
    SELECT currency INTO bad_currency FROM ledger_postingline
        WHERE posting_id = pid GROUP BY currency HAVING sum(amount) <> 0 LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'ledger posting #% does not balance in %: debits must equal credits',
            pid, bad_currency
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE CONSTRAINT TRIGGER ledger_posting_balanced
    AFTER INSERT ON ledger_posting
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION ledger_posting_check_balanced();

CREATE CONSTRAINT TRIGGER ledger_postingline_balanced
    AFTER INSERT ON ledger_postingline
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION ledger_posting_check_balanced();
"""

BACKWARD = r"""
DROP TRIGGER IF EXISTS ledger_postingline_balanced ON ledger_postingline;
DROP TRIGGER IF EXISTS ledger_posting_balanced ON ledger_posting;
DROP TRIGGER IF EXISTS ledger_postingline_check_insert ON ledger_postingline;
DROP TRIGGER IF EXISTS ledger_posting_stamp_txid ON ledger_posting;
DROP TRIGGER IF EXISTS ledger_postingline_immutable ON ledger_postingline;
DROP TRIGGER IF EXISTS ledger_posting_immutable ON ledger_posting;
DROP FUNCTION IF EXISTS ledger_posting_check_balanced();
DROP FUNCTION IF EXISTS ledger_postingline_check_insert();
DROP FUNCTION IF EXISTS ledger_posting_stamp_txid();
DROP FUNCTION IF EXISTS ledger_refuse_change();
ALTER TABLE ledger_posting DROP COLUMN IF EXISTS created_txid;
"""


class Migration(migrations.Migration):
    dependencies = [("ledger", "0001_initial")]

    operations = [migrations.RunSQL(FORWARD, BACKWARD)]
