-- The same add as add_random.sql, every one to the SAME user: adds serialize on that account's row lock,
-- so this is the ceiling of one user's throughput at this durability.
\set cents random(1, 10000)
\set key random(1, 9223372036854775807)
WITH credited AS (
    INSERT INTO accounts AS account (user_id, balance)
    VALUES ('pgb-hot', (:cents::numeric / 100)::numeric(12, 2))
    ON CONFLICT (user_id) DO UPDATE SET balance = account.balance + EXCLUDED.balance, updated_at = now()
    RETURNING account.balance
)
INSERT INTO ledger_entries (id, user_id, amount, balance_after, idempotency_key)
SELECT (lpad(to_hex((extract(epoch FROM clock_timestamp()) * 1000)::bigint), 12, '0')
        || substr(md5(random()::text), 1, 20))::uuid,
       'pgb-hot', (:cents::numeric / 100)::numeric(12, 2), credited.balance, 'k' || :key::text
FROM credited;
