-- A balance read of a random user among 10,000 (all of them exist, see seed.sql), the service's query.
\set uid random(1, 10000)
SELECT balance FROM accounts WHERE user_id = 'pgb-' || :uid::text;
