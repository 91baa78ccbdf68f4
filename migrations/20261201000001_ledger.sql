-- The BitBurst ledger: one balance row per user and an append-only list of entries.
-- Every rule that matters for money is a constraint here too, even where Rust checks it first.

CREATE TABLE accounts (
    user_id    text PRIMARY KEY
               CONSTRAINT accounts_user_id_shape CHECK (user_id ~ '^[A-Za-z0-9._~@+-]{1,128}$'),
    balance    numeric(15, 2) NOT NULL
               CONSTRAINT accounts_balance_within_limit CHECK (balance >= 0 AND balance <= 1000000000000.00),
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE ledger_entries (
    id              uuid PRIMARY KEY,
    -- The order in which the ledger recorded entries. A user's adds hold that user's account row lock
    -- from before their seq is drawn until commit, so within one user seq order is recording order.
    -- Unique by construction; its only index is the history index below, where it follows user_id.
    seq             bigint GENERATED ALWAYS AS IDENTITY,
    user_id         text NOT NULL REFERENCES accounts (user_id),
    amount          numeric(12, 2) NOT NULL
                    CONSTRAINT ledger_entries_amount_valid CHECK (amount > 0 AND amount <= 1000000000.00),
    balance_after   numeric(15, 2) NOT NULL
                    CONSTRAINT ledger_entries_balance_after_valid
                    CHECK (balance_after >= amount AND balance_after <= 1000000000000.00),
    idempotency_key text
                    CONSTRAINT ledger_entries_idempotency_key_shape CHECK (idempotency_key ~ '^[ -~]{1,255}$'),
    -- clock_timestamp(), not now(): the time of the insert, which comes after the account row lock, so a
    -- user's entries are timed in the order they were recorded (now() is when the transaction began).
    created_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    -- Exactly once per (user, key), across retries, concurrent duplicates and instances. Entries without
    -- a key are NULL here, and NULLs are distinct, so unkeyed adds never collide.
    CONSTRAINT ledger_entries_one_per_key UNIQUE (user_id, idempotency_key)
);

-- Both history paginations are a range scan of this index: offset pages walk it from the newest entry,
-- keyset pages start at `seq < cursor`.
CREATE INDEX ledger_entries_history ON ledger_entries (user_id, seq DESC);

CREATE FUNCTION ledger_entries_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'ledger entries are never changed or removed (% refused)', TG_OP
        USING ERRCODE = 'restrict_violation';
END;
$$;

CREATE TRIGGER ledger_entries_immutable
    BEFORE UPDATE OR DELETE ON ledger_entries
    FOR EACH ROW EXECUTE FUNCTION ledger_entries_refuse_change();

CREATE TRIGGER ledger_entries_not_truncated
    BEFORE TRUNCATE ON ledger_entries
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_entries_refuse_change();
