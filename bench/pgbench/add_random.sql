-- One add to a random user among 10,000, as BitBurst's PostgreSQL adapter does it: ONE statement (a CTE:
-- upsert the account's balance, insert the entry with balance_after), committed on its own (autocommit),
-- so one transaction and one WAL flush per add. Keep in step with adapters-postgres/src/record.rs.
\set uid random(1, 10000)
\set cents random(1, 10000)
\set key random(1, 9223372036854775807)
WITH credited AS (
    INSERT INTO accounts AS account (user_id, balance)
    VALUES ('pgb-' || :uid::text, (:cents::numeric / 100)::numeric(12, 2))
    ON CONFLICT (user_id) DO UPDATE SET balance = account.balance + EXCLUDED.balance, updated_at = now()
    RETURNING account.balance
)
INSERT INTO ledger_entries (id, user_id, amount, balance_after, idempotency_key)
-- The service's ids are UUIDv7 (time first), so the unique index on id grows at its right edge; a random
-- v4 id here would make PostgreSQL's side slower than the service's. Millisecond time, then random bits.
SELECT (lpad(to_hex((extract(epoch FROM clock_timestamp()) * 1000)::bigint), 12, '0')
        || substr(md5(random()::text), 1, 20))::uuid,
       'pgb-' || :uid::text, (:cents::numeric / 100)::numeric(12, 2), credited.balance, 'k' || :key::text
FROM credited;
