#!/usr/bin/env bash
# The audit trail's costs, in one command: how history pages, cursors, time ranges and balances at a time
# cost at depth (a user with 100,000 transactions), how long the migration that numbers and hashes an
# existing ledger takes, and how long `bitburst verify` takes over about 1.1 million transactions and
# 100,000 users (and over a tenth of that, to show its memory stays flat). See README.md.
#
#   bench/audit.sh                     # about 10 minutes, most of it seeding and migrating
#
# Environment: BENCH_PG_BIN, BENCH_SKIP_BUILD=1 (use target/release/bitburst as it is),
# BENCH_REQUESTS (300 per measured request).
set -euo pipefail

cd "$(dirname "$0")/.."
REPO=$(pwd)
POOL_SIZE=8
REQUESTS=${BENCH_REQUESTS:-300}
RESULTS=$REPO/bench/results
# shellcheck source=bench/lib.sh
source "$REPO/bench/lib.sh"

require_tools
build_binaries app
make_workdir
start_postgres

log "seeding ledger_full (100,000 transactions of one user, 99,999 users x 10) and ledger_tenth"
seed_old_ledger ledger_full 100000 99999
seed_old_ledger ledger_tenth 10000 9999
checkpoint

url() { echo "postgres://bench:$PG_PASSWORD@127.0.0.1:$PG_PORT/$1"; }

# migrate DATABASE: starts bitburst on it on BITBURST_PORT (it migrates at start) and sets
# MIGRATION_SECONDS to the time until /readyz.
migrate() {
    local started
    BITBURST_PORT=$(free_port)
    started=$(date +%s.%N)
    BITBURST_READY_SECONDS=1800 start_bitburst "$BITBURST_PORT" "$(url "$1")"
    MIGRATION_SECONDS=$(awk -v a="$started" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
}

log "migrating ledger_tenth"
migrate ledger_tenth
TENTH_MIGRATION_S=$MIGRATION_SECONDS
stop_bitburst
log "migrating ledger_full"
migrate ledger_full
FULL_MIGRATION_S=$MIGRATION_SECONDS
checkpoint
log "measuring pages, cursors, ranges and balances at a time on port $BITBURST_PORT"
PAGES=$(python3 "$REPO/bench/audit_measure.py" http "http://127.0.0.1:$BITBURST_PORT" deep "$REQUESTS")
stop_bitburst
log "running bitburst verify"
VERIFY_FULL=$(python3 "$REPO/bench/audit_measure.py" verify "$BITBURST" "$(url ledger_full)")
VERIFY_TENTH=$(python3 "$REPO/bench/audit_measure.py" verify "$BITBURST" "$(url ledger_tenth)")

COMMIT=$(commit_description)
CPU=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
cat >"$RESULTS/audit-latest.md" <<EOF2
# The audit trail's costs, $(date -u '+%Y-%m-%d %H:%M UTC')

\`bench/audit.sh\` at commit $COMMIT, release build, one client, keep-alive, $REQUESTS requests a row
(after 20 to warm up), PostgreSQL $PG_VERSION ($DURABILITY) on the same machine ($CPU, $(nproc) cores).

## History and balances at depth

The user \`deep\` has 100,000 transactions (10,000 pages), recorded one second apart from 2026-01-01.

| request | median ms | p99 ms |
|---|---:|---:|
$PAGES

## Migration and verify

Both ledgers were written under the first schema and upgraded by the service at start-up (the
migration numbers and hashes every existing entry, see \`migrations/20261203000001_audit_trail.sql\`).

| ledger | transactions | users | migration s | verify s | verify max RSS MiB | verify result |
|---|---:|---:|---:|---:|---:|---|
| ledger_tenth | 109,990 | 10,000 | $TENTH_MIGRATION_S | $VERIFY_TENTH |
| ledger_full | 1,099,990 | 100,000 | $FULL_MIGRATION_S | $VERIFY_FULL |
EOF2
log "wrote $RESULTS/audit-latest.md"
cat "$RESULTS/audit-latest.md"
