#!/usr/bin/env bash
# One user's account row locked by another session for a while (an operator's transaction, a migration),
# while that user keeps sending adds and everybody else adds at full speed: what the other users see, next
# to the same load without the lock. See README.md.
#
#   bench/locked.sh
#
# Environment: LOCKED_SECONDS (10: how long the row is locked, and each run's length), LOCKED_CONNECTIONS
# (64), BITBURST_PG_POOL_SIZE (32), BENCH_PG_BIN, BENCH_SKIP_BUILD=1 (use the binaries already in
# target/release).
set -euo pipefail

cd "$(dirname "$0")/.."
REPO=$(pwd)
SECONDS_LOCKED=${LOCKED_SECONDS:-10}
CONNECTIONS=${LOCKED_CONNECTIONS:-64}
POOL_SIZE=${BITBURST_PG_POOL_SIZE:-32}
USERS=10000
LOCKED_USER=locked-user
RESULTS=$REPO/bench/results
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
# shellcheck source=bench/lib.sh
source "$REPO/bench/lib.sh"

[[ $SECONDS_LOCKED =~ ^[1-9][0-9]*$ ]] || die "LOCKED_SECONDS must be a whole number, not '$SECONDS_LOCKED'"
require_tools
command -v curl >/dev/null || apt_install curl
build_binaries app loadgen

make_workdir
start_postgres
psql_q -d postgres -c "CREATE DATABASE ledger_bitburst"
BITBURST_PORT=$(free_port)
start_bitburst "$BITBURST_PORT" "postgres://bench:$PG_PASSWORD@127.0.0.1:$PG_PORT/ledger_bitburst"
TARGET=http://127.0.0.1:$BITBURST_PORT

# add_to_locked_user KEY: one keyed add of 1.00; prints "status seconds".
add_to_locked_user() {
    curl -s -o /dev/null -w '%{http_code} %{time_total}\n' --max-time 30 -X POST \
        -H 'Content-Type: application/json' -H "Idempotency-Key: $1" -d '{"amount": "1.00"}' \
        "$TARGET/users/$LOCKED_USER/add"
}

# The locked user's adds, one after another (each waits for its answer), until the run ends.
locked_user_adds() {
    local run=$1 n=0
    while [[ ! -e $WORK/$run.done ]]; do
        n=$((n + 1))
        add_to_locked_user "$run-$n" >>"$WORK/$run.locked-user"
    done
}

# measure RUN: loadgen's random adds over everyone else, with the locked user's adds alongside.
measure() {
    local run=$1 status=0
    : >"$WORK/$run.locked-user"
    locked_user_adds "$run" &
    local adder=$!
    LOADGEN_RUN_ID="locked-$STAMP-$run" "$LOADGEN" --target "$TARGET" --connections "$CONNECTIONS" \
        --duration "$SECONDS_LOCKED" --users "$USERS" --mix add=100 --repeat-share 0 --progress-secs 0 --json \
        >"$WORK/$run.out" 2>"$WORK/$run.err" || status=$?
    touch "$WORK/$run.done"
    wait "$adder"
    [[ $status == 0 ]] || { cat "$WORK/$run.out" "$WORK/$run.err" >&2; die "loadgen failed or did not verify ($run)"; }
}

[[ $(add_to_locked_user seed) == 2* ]] || die "the first add to $LOCKED_USER failed"

log "without a lock: $CONNECTIONS connections for $SECONDS_LOCKED s"
measure free

log "with $LOCKED_USER's row locked for $SECONDS_LOCKED s"
psql_q -d ledger_bitburst -c "BEGIN" -c "SELECT 1 FROM accounts WHERE user_id = '$LOCKED_USER' FOR UPDATE" \
    -c "SELECT pg_sleep($SECONDS_LOCKED)" -c "COMMIT" >/dev/null &
LOCKER=$!
sleep 0.2
measure locked
wait "$LOCKER"
sleep 1

# row RUN LABEL: the other users' figures from loadgen, and the locked user's answers.
row() {
    local run=$1 label=$2 summary answers
    summary=$(tail -n 1 "$WORK/$run.out")
    answers=$(awk '{ count[$1]++; if ($2 > worst) worst = $2 } END {
        for (status in count) printf "%s%d × %s", (n++ ? ", " : ""), count[status], status; printf "; slowest %.2f s", worst }' \
        "$WORK/$run.locked-user")
    jq -r --arg name "$label" --arg answers "$answers" '"| \($name) | \(.operations.add.requests_per_second | round) | \(.operations.add.p50_us / 1000 * 100 | round / 100) / \(.operations.add.p99_us / 1000 * 100 | round / 100) | \(if .verify.ok then "OK" else "FAILED" end) | \($answers) |"' <<<"$summary"
}

TABLE=$(
    echo "| run | other users: adds/s | other users: p50 / p99 ms | verified | the locked user's answers (HTTP status), one at a time |"
    echo "|---|---:|---:|---|---|"
    row free "no lock"
    row locked "row locked ${SECONDS_LOCKED} s"
)
BALANCE=$(curl -s "$TARGET/users/$LOCKED_USER/balance")
ACCEPTED=$(cat "$WORK"/*.locked-user | grep -c '^200 ' || true)

cat >"$RESULTS/locked-latest.md" <<EOF
# A locked row, $(date -u '+%Y-%m-%d %H:%M UTC')

\`bench/locked.sh\` at commit $(commit_description): $CONNECTIONS connections of random adds over $USERS users
for $SECONDS_LOCKED s, while \`$LOCKED_USER\` sends one keyed add after another; then the same while another
session holds \`$LOCKED_USER\`'s account row (\`SELECT ... FOR UPDATE\`) for $SECONDS_LOCKED s.
PostgreSQL $PG_VERSION: $DURABILITY.

$TABLE

- The locked user's adds wait for the lock, up to the statement timeout (5 s), and are then answered 503
  (not recorded); the others' are never queued behind them.
- The locked user's balance afterwards: \`$BALANCE\`, from $ACCEPTED adds answered 200 (and the first,
  of 1.00, before the runs).
EOF
log "wrote $RESULTS/locked-latest.md"
printf '%s\n' "$TABLE"
