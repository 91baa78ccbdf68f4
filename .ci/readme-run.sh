#!/usr/bin/env bash
# The README's run command, verbatim, as a newcomer would run it in a fresh clone: the service must come
# up on its default address, answer /healthz, take an add and read it back. Then the audit trail, from
# outside: a fresh user's history over several pages must pass tools/check_history_chain.py, the
# independent checker in Python, and a receipt hash that is not in the chain must fail it.
set -euo pipefail
cd "$(dirname "$0")/.."

run_command=$(awk '/^## Run/ { section = 1 } section && /^```sh$/ { getline; print; exit }' README.md)
[ -n "$run_command" ] || { echo "readme-run: no command under '## Run' in README.md" >&2; exit 1; }
base=http://127.0.0.1:8080
if curl -s -o /dev/null "$base/healthz"; then
    echo "readme-run: something already listens on 8080; stop it first" >&2
    exit 1
fi

echo "readme-run: $run_command"
log=$(mktemp)
setsid bash -c "$run_command" >"$log" 2>&1 &
service=$!
trap 'kill -TERM -- -"$service" 2>/dev/null || true; wait "$service" 2>/dev/null || true' EXIT

# The first run builds the release binary: minutes on a small machine.
for _ in $(seq 1 1200); do
    curl -sf -o /dev/null "$base/healthz" && break
    if ! kill -0 "$service" 2>/dev/null; then
        echo "readme-run: the command exited before it served /healthz:" >&2
        tail -n 30 "$log" >&2
        exit 1
    fi
    sleep 1
done
curl -sf "$base/healthz" >/dev/null || { echo "readme-run: no /healthz within 20 minutes" >&2; tail -n 30 "$log" >&2; exit 1; }

added=$(curl -sf -X POST "$base/users/newcomer/add" -H 'content-type: application/json' -d '{"amount": "12.34"}')
balance=$(curl -sf "$base/users/newcomer/balance")
echo "readme-run: add answered $added"
echo "readme-run: balance answered $balance"
case "$balance" in
    *'"balance":"12.34"'*) echo "readme-run: ok" ;;
    *) echo "readme-run: the balance is not the 12.34 just added" >&2; exit 1 ;;
esac

checker=tools/check_history_chain.py
field() { python3 -c 'import json, sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }
python3 "$checker" --self-test

# 23 adds make three history pages (10 a page); every third has an Idempotency-Key.
user="chain-$(date +%s)-$$"
add() {
    curl -sf -X POST "$base/users/$user/add" -H 'content-type: application/json' "$@" \
        || { echo "readme-run: an add for $user failed" >&2; return 1; }
}
for i in $(seq 1 23); do
    if [ $((i % 3)) -eq 0 ]; then
        answer=$(add -H "idempotency-key: chain-$i" -d "{\"amount\": \"$i.05\"}")
    else
        answer=$(add -d "{\"amount\": $i}")
    fi
    if [ "$i" -eq 6 ]; then receipt=$answer; fi
done
head=$(field hash <<<"$answer")
# One key sent again: the same transaction, not a 24th.
headers=$(mktemp)
replayed=$(add -D "$headers" -H 'idempotency-key: chain-6' -d '{"amount": "6.05"}')
grep -qi '^idempotent-replayed: true' "$headers" \
    || { echo "readme-run: the repeated key was not replayed" >&2; exit 1; }
rm -f "$headers"
[ "$(field hash <<<"$replayed")" = "$(field hash <<<"$receipt")" ] \
    || { echo "readme-run: the replay answered another transaction: $replayed" >&2; exit 1; }

echo "readme-run: $checker $base $user --expect-hash (the receipt of the 6th add)"
if ! summary=$(python3 "$checker" "$base" "$user" --expect-hash "$(field hash <<<"$receipt")"); then
    echo "readme-run: the hash chain of $user does not check:" >&2
    echo "$summary" >&2
    exit 1
fi
echo "readme-run: $summary"
[ "$summary" = "chain ok: $user 23 transactions, head $head" ] \
    || { echo "readme-run: expected 23 transactions ending in the last add's hash $head" >&2; exit 1; }

echo "readme-run: $checker with a receipt hash that is not in the chain must exit 1"
status=0
python3 "$checker" "$base" "$user" --expect-hash "$(printf '%064d' 0)" || status=$?
[ "$status" -eq 1 ] \
    || { echo "readme-run: the checker exited $status, not 1, for a hash not in the chain" >&2; exit 1; }
echo "readme-run: hash chain ok"
