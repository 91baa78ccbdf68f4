-- Gives each of the 10,000 users an account and one consistent entry of 1.00, so that every balance read
-- finds its row. Run once, on the fresh database, before the scenarios.
WITH credited AS (
    INSERT INTO accounts AS account (user_id, balance)
    SELECT 'pgb-' || n, 1.00 FROM generate_series(1, 10000) AS n
    ON CONFLICT (user_id) DO UPDATE SET balance = account.balance + EXCLUDED.balance, updated_at = now()
    RETURNING account.user_id, account.balance
)
INSERT INTO ledger_entries (id, user_id, amount, balance_after, idempotency_key)
SELECT gen_random_uuid(), user_id, 1.00, balance, 'seed' FROM credited;
