#!/usr/bin/env bash
# A long run with nobody scraping /metrics: mixed keyed load on PostgreSQL, one minute at a time, with the
# service's resident memory after each minute. Shows whether memory stays bounded and latency steady over
# time. See README.md.
#
#   bench/soak.sh                      # 10 minutes of load, a few more for verification
#
# Environment: SOAK_MINUTES (10), SOAK_CONNECTIONS (256), BITBURST_PG_POOL_SIZE (32), BENCH_PG_BIN,
# BENCH_SKIP_BUILD=1 (use the binaries already in target/release).
set -euo pipefail

cd "$(dirname "$0")/.."
REPO=$(pwd)
MINUTES=${SOAK_MINUTES:-10}
CONNECTIONS=${SOAK_CONNECTIONS:-256}
POOL_SIZE=${BITBURST_PG_POOL_SIZE:-32}
USERS=10000
RESULTS=$REPO/bench/results
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
# shellcheck source=bench/lib.sh
source "$REPO/bench/lib.sh"

[[ $MINUTES =~ ^[1-9][0-9]*$ ]] || die "SOAK_MINUTES must be a whole number, not '$MINUTES'"
require_tools
build_binaries app loadgen

make_workdir
start_postgres
psql_q -d postgres -c "CREATE DATABASE ledger_bitburst"
BITBURST_PORT=$(free_port)
start_bitburst "$BITBURST_PORT" "postgres://bench:$PG_PASSWORD@127.0.0.1:$PG_PORT/ledger_bitburst"

rss_mib() { awk '/^VmRSS:/ { printf "%.1f", $2 / 1024 }' "/proc/$SERVER_PID/status"; }

START_RSS=$(rss_mib)
log "soak: $MINUTES minutes at $CONNECTIONS connections; bitburst pid $SERVER_PID, RSS $START_RSS MiB at start"
ROWS=()
FAILED=0
for minute in $(seq 1 "$MINUTES"); do
    status=0
    # One verified loadgen run a minute, each with its own users; nothing scrapes /metrics.
    LOADGEN_RUN_ID="soak-$STAMP-m$minute" "$LOADGEN" --target "http://127.0.0.1:$BITBURST_PORT" \
        --connections "$CONNECTIONS" --duration 60 --users "$USERS" --mix add=80,balance=15,history=5 \
        --repeat-share 0.05 --progress-secs 0 --json >"$WORK/loadgen.out" 2>"$WORK/loadgen.err" || status=$?
    summary=$(tail -n 1 "$WORK/loadgen.out")
    rss=$(rss_mib)
    if [[ $status != 0 ]] || ! jq -e '.verify.ok' >/dev/null 2>&1 <<<"$summary"; then
        log "minute $minute: loadgen failed or did not verify (exit $status)"
        cat "$WORK/loadgen.out" "$WORK/loadgen.err" >&2
        FAILED=$((FAILED + 1))
        ROWS+=("| $minute | - | - | - | $rss | FAILED |")
        continue
    fi
    read -r rps add_p99 worst_p99 < <(jq -r '[(.operations | map(.requests_per_second // 0) | add | round),
        (.operations.add.p99_us / 1000), ([.operations[].p99_us] | max / 1000)] | @tsv' <<<"$summary")
    row=$(printf '| %s | %s | %.1f | %.1f | %s | OK |' "$minute" "$rps" "$add_p99" "$worst_p99" "$rss")
    ROWS+=("$row")
    log "minute $minute: $row"
done
END_RSS=$(rss_mib)
stop_bitburst

TABLE=$(
    echo "| minute | req/s (all operations) | add p99 ms | worst p99 ms (any operation) | RSS MiB after the minute | verified |"
    echo "|---:|---:|---:|---:|---:|---|"
    printf '%s\n' "${ROWS[@]}"
)
COMMIT=$(commit_description)
cat >"$RESULTS/soak-latest.md" <<MD
# Soak with no scraper, $(date -u '+%Y-%m-%d %H:%M UTC')

\`bench/soak.sh\` at commit $COMMIT: $MINUTES one-minute runs of \`loadgen --connections $CONNECTIONS --users $USERS
--mix add=80,balance=15,history=5 --repeat-share 0.05\` (keyed adds, 5% deliberate repeats) against one
\`bitburst\` on PostgreSQL $PG_VERSION (pool $POOL_SIZE, default durability), each run verified (every
acknowledged add in the ledger once, balances exact) before the next starts; nothing scrapes \`/metrics\`.
$(nproc) cores shared by PostgreSQL, the service and loadgen.

RSS at start (before any load): $START_RSS MiB; at the end: $END_RSS MiB.

$TABLE
MD
log "wrote $RESULTS/soak-latest.md"
printf '%s\n' "$TABLE"
[[ $FAILED == 0 ]] || die "$FAILED minute(s) failed or did not verify"
