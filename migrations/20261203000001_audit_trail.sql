-- The audit trail: each user's entries numbered 1, 2, 3, ... with no gaps, and chained by SHA-256 so that
-- changing, removing or reordering one breaks every later hash. The account row holds the head of the
-- chain (the last sequence, hash and time), read under the row lock by the next add.
--
-- Entries recorded before this migration keep every value they had; they get their sequence from the
-- order the ledger recorded them in (`seq`) and their hash from the same canonical encoding the service
-- uses (domain's `EntryHash::chain`, documented in docs/api.md).

ALTER TABLE accounts
    ADD COLUMN last_sequence bigint NOT NULL DEFAULT 0
        CONSTRAINT accounts_last_sequence_valid CHECK (last_sequence >= 0),
    ADD COLUMN last_hash bytea NOT NULL DEFAULT '\x0000000000000000000000000000000000000000000000000000000000000000'
        CONSTRAINT accounts_last_hash_length CHECK (octet_length(last_hash) = 32),
    ADD COLUMN last_created_at timestamptz;

ALTER TABLE ledger_entries
    ADD COLUMN sequence bigint,
    ADD COLUMN hash bytea;

ALTER TABLE ledger_entries DISABLE TRIGGER ledger_entries_immutable;

DO $$
DECLARE
    entry record;
    current_user_id text := NULL;
    number bigint := 0;
    previous bytea;
BEGIN
    FOR entry IN
        SELECT id, user_id, amount, balance_after, created_at FROM ledger_entries ORDER BY user_id, seq
    LOOP
        IF current_user_id IS DISTINCT FROM entry.user_id THEN
            current_user_id := entry.user_id;
            number := 0;
            previous := '\x0000000000000000000000000000000000000000000000000000000000000000'::bytea;
        END IF;
        number := number + 1;
        previous := sha256(convert_to(
            encode(previous, 'hex') || E'\n'
            || entry.user_id || E'\n'
            || number::text || E'\n'
            || entry.id::text || E'\n'
            || entry.amount::text || E'\n'
            || entry.balance_after::text || E'\n'
            || to_char(entry.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') || E'\n',
            'UTF8'));
        UPDATE ledger_entries SET sequence = number, hash = previous WHERE id = entry.id;
    END LOOP;
END
$$;

ALTER TABLE ledger_entries ENABLE TRIGGER ledger_entries_immutable;

UPDATE accounts AS account
SET last_sequence = head.sequence, last_hash = head.hash, last_created_at = head.created_at
FROM (
    SELECT DISTINCT ON (user_id) user_id, sequence, hash, created_at
    FROM ledger_entries
    ORDER BY user_id, sequence DESC
) AS head
WHERE account.user_id = head.user_id;

ALTER TABLE ledger_entries
    ALTER COLUMN sequence SET NOT NULL,
    ALTER COLUMN hash SET NOT NULL,
    ADD CONSTRAINT ledger_entries_sequence_valid CHECK (sequence >= 1),
    ADD CONSTRAINT ledger_entries_hash_length CHECK (octet_length(hash) = 32),
    -- The service decides created_at (max of the clock and the previous entry's time, so a user's history
    -- never goes back in time) and hashes it: the database no longer picks it.
    ALTER COLUMN created_at DROP DEFAULT;

-- One entry per (user, sequence), and the index every history page is a range scan of: page N of a
-- range starts a computable number of sequences below its newest entry, so no page walks the ones above.
CREATE UNIQUE INDEX ledger_entries_user_sequence ON ledger_entries (user_id, sequence);
-- Balances at a time and the ends of a time range: one descent each.
CREATE INDEX ledger_entries_user_time ON ledger_entries (user_id, created_at, sequence);

-- The ledger-wide order served only the old pagination, and its number told every cursor's holder how
-- many transactions all users had made.
DROP INDEX ledger_entries_history;
ALTER TABLE ledger_entries DROP COLUMN seq;
