#!/usr/bin/env bash
# The README's run command, verbatim, as a newcomer would run it in a fresh clone: the service must come
# up on its default address, answer /healthz, take an add and read it back.
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
