#!/usr/bin/env bash
# Side-by-side numbers in one command: what PostgreSQL itself does per second (pgbench, the service's
# statements) next to what BitBurst does over HTTP on the same server (loadgen, verified). See README.md.
#
#   bench/run.sh                      # defaults: 10 s per measurement, about 10 minutes in all
#   BENCH_SECONDS=3 bench/run.sh      # a quick pass
#
# Environment: BENCH_SECONDS (10), BENCH_CONNECTIONS ("16 64 256"), BITBURST_PG_POOL_SIZE (32),
# BENCH_PG_BIN (PostgreSQL's bin directory; found when unset), BENCH_SKIP_BUILD=1 (use the binaries
# already in target/release).
set -euo pipefail

cd "$(dirname "$0")/.."
REPO=$(pwd)
BENCH_SECONDS=${BENCH_SECONDS:-10}
read -r -a CONNECTIONS <<<"${BENCH_CONNECTIONS:-16 64 256}"
POOL_SIZE=${BITBURST_PG_POOL_SIZE:-32}
USERS=10000
MEMORY_CONNECTIONS=64
MIGRATION=$REPO/migrations/20261201000001_ledger.sql
SCRIPTS=$REPO/bench/pgbench
RESULTS=$REPO/bench/results
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
RAW=$RESULTS/raw/$STAMP.jsonl

# shellcheck source=bench/lib.sh
source "$REPO/bench/lib.sh"

[[ $BENCH_SECONDS =~ ^[1-9][0-9]*$ ]] || die "BENCH_SECONDS must be a whole number of seconds, not '$BENCH_SECONDS'"
[[ $POOL_SIZE =~ ^[1-9][0-9]*$ ]] || die "BITBURST_PG_POOL_SIZE must be a whole number, not '$POOL_SIZE'"

require_tools

build_binaries app loadgen

make_workdir

# --- PostgreSQL: a throwaway server with the default durability -------------------------------------
start_postgres

psql_q -d postgres -c "CREATE DATABASE ledger_pgbench" -c "CREATE DATABASE ledger_bitburst"
psql_q -d ledger_pgbench -f "$MIGRATION"
psql_q -d ledger_pgbench -f "$SCRIPTS/seed.sql"


mkdir -p "$RESULTS/raw"
: >"$RAW"
declare -A PGBENCH_TPS BITBURST_RPS BITBURST_P50 BITBURST_P99 VERIFIED
FAILED_RUNS=0

# --- pgbench: PostgreSQL's own ceiling for the service's statements ----------------------------------
run_pgbench() {
    local scenario=$1 script=$2 clients=$3 output tps latency status=0
    checkpoint
    output=$("$PG_BIN/pgbench" -n -M prepared -c "$clients" -j 2 -T "$BENCH_SECONDS" -f "$SCRIPTS/$script" \
        ledger_pgbench 2>&1) || status=$?
    tps=$(sed -n 's/^tps = \([0-9.]*\) .*/\1/p' <<<"$output" | tail -n 1)
    latency=$(sed -n 's/^latency average = \([0-9.]*\) ms.*/\1/p' <<<"$output" | tail -n 1)
    if [[ $status != 0 || -z $tps ]]; then
        log "pgbench $scenario -c $clients failed (exit $status):"
        printf '%s\n' "$output" >&2
        FAILED_RUNS=$((FAILED_RUNS + 1))
        tps=
    fi
    PGBENCH_TPS[$scenario/$clients]=${tps:-}
    log "pgbench $scenario -c $clients: ${tps:-failed} tps, latency average ${latency:-?} ms"
    jq -cn --arg scenario "$scenario" --argjson clients "$clients" --arg tps "${tps:-}" --arg latency "${latency:-}" \
        --arg output "$output" \
        '{tool: "pgbench", scenario: $scenario, clients: $clients, tps: ($tps | tonumber? // null),
          latency_avg_ms: ($latency | tonumber? // null), output: $output}' >>"$RAW"
}

for clients in "${CONNECTIONS[@]}"; do run_pgbench add-random add_random.sql "$clients"; done
for clients in "${CONNECTIONS[@]}"; do run_pgbench add-hot add_hot.sql "$clients"; done
for clients in "${CONNECTIONS[@]}"; do run_pgbench balance-read balance_read.sql "$clients"; done

# --- BitBurst over HTTP, measured and verified by loadgen --------------------------------------------
# run_loadgen SCENARIO CONNECTIONS OPERATION LOADGEN-ARGS...
run_loadgen() {
    local scenario=$1 connections=$2 operation=$3 status=0 summary
    shift 3
    [[ $scenario == add-memory ]] || checkpoint
    # Each run its own users (LOADGEN_RUN_ID), unless the arguments name the users of an earlier run.
    LOADGEN_RUN_ID="bench-$STAMP-$scenario-c$connections" "$LOADGEN" --target "http://127.0.0.1:$BITBURST_PORT" \
        --connections "$connections" --duration "$BENCH_SECONDS" --progress-secs 0 --json "$@" \
        >"$WORK/loadgen.out" 2>"$WORK/loadgen.err" || status=$?
    summary=$(tail -n 1 "$WORK/loadgen.out")
    if ! jq -e 'type == "object"' >/dev/null 2>&1 <<<"$summary"; then
        log "loadgen $scenario --connections $connections failed (exit $status):"
        cat "$WORK/loadgen.out" "$WORK/loadgen.err" >&2
        FAILED_RUNS=$((FAILED_RUNS + 1))
        VERIFIED[$scenario/$connections]=error
        return 0
    fi
    BITBURST_RPS[$scenario/$connections]=$(jq -r ".operations.$operation.requests_per_second" <<<"$summary")
    BITBURST_P50[$scenario/$connections]=$(jq -r ".operations.$operation.p50_us" <<<"$summary")
    BITBURST_P99[$scenario/$connections]=$(jq -r ".operations.$operation.p99_us" <<<"$summary")
    VERIFIED[$scenario/$connections]=$(jq -r 'if .verify == null then "not checked" elif .verify.ok | not then "FAILED" elif .verify.users == 0 then "no adds" else "OK" end' <<<"$summary")
    if [[ $status != 0 ]]; then
        log "loadgen $scenario --connections $connections: exit $status"
        grep -h '^verify' "$WORK/loadgen.out" "$WORK/loadgen.err" >&2 || true
        FAILED_RUNS=$((FAILED_RUNS + 1))
    fi
    log "loadgen $scenario --connections $connections: $(grep -h '^verify:' "$WORK/loadgen.out" || echo 'not verified')"
    jq -c --arg scenario "$scenario" '{tool: "loadgen", scenario: $scenario, summary: .}' <<<"$summary" >>"$RAW"
}

BITBURST_PORT=$(free_port)
log "bitburst on PostgreSQL, pool size $POOL_SIZE, port $BITBURST_PORT"
start_bitburst "$BITBURST_PORT" "postgres://bench:$PG_PASSWORD@127.0.0.1:$PG_PORT/ledger_bitburst"
# Fresh adds only (no deliberate key repeats), as in the pgbench scripts.
for connections in "${CONNECTIONS[@]}"; do
    run_loadgen add-random "$connections" add --mix add=100 --users "$USERS" --repeat-share 0
done
for connections in "${CONNECTIONS[@]}"; do
    run_loadgen add-hot "$connections" add --mix add=100 --distribution hot --repeat-share 0
done
# Give most of the 10,000 readers a row first (pgbench's readers all have one, see seed.sql).
log "seeding balances for the reads"
SEED_RUN=bench-$STAMP-seed
"$LOADGEN" --target "http://127.0.0.1:$BITBURST_PORT" --connections 64 --requests 30000 --users "$USERS" \
    --mix add=100 --repeat-share 0 --run-id "$SEED_RUN" --progress-secs 0 --no-verify >/dev/null 2>"$WORK/seed.log"
for connections in "${CONNECTIONS[@]}"; do
    # The same users as the seeding run, so that the reads find rows.
    run_loadgen balance-read "$connections" balance --mix balance=100 --users "$USERS" --run-id "$SEED_RUN"
done
stop_bitburst

BITBURST_PORT=$(free_port)
log "bitburst in memory, port $BITBURST_PORT"
start_bitburst "$BITBURST_PORT"
run_loadgen add-memory "$MEMORY_CONNECTIONS" add --mix add=100 --users "$USERS" --repeat-share 0
# The users the adds above wrote, as balance-read reads the seeded users on PostgreSQL.
run_loadgen balance-memory "$MEMORY_CONNECTIONS" balance --mix balance=100 --users "$USERS" \
    --run-id "bench-$STAMP-add-memory-c$MEMORY_CONNECTIONS"
stop_bitburst

# --- The table and the machine ----------------------------------------------------------------------
millis() { [[ -n ${1:-} && $1 != null ]] && awk -v us="$1" 'BEGIN { printf "%.2f", us / 1000 }' || echo "-"; }
number() { [[ -n ${1:-} && $1 != null ]] && awk -v x="$1" 'BEGIN { printf "%.0f", x }' || echo "-"; }
ratio() {
    [[ -n ${1:-} && -n ${2:-} && $1 != null ]] && awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }' \
        || echo "-"
}
# row SCENARIO CONNECTIONS [MEMORY-SCENARIO]: the last column compares with the memory store's rate.
row() {
    local scenario=$1 connections=$2 key="$1/$2" tps=${PGBENCH_TPS[$1/$2]:-} memory=-
    [[ -n ${3:-} ]] && memory=$(ratio "${BITBURST_RPS[$key]:-}" "${BITBURST_RPS[$3/$MEMORY_CONNECTIONS]:-}")
    printf '| %s | %s | %s | %s | %s | %s | %s / %s | %s |\n' "$scenario" "$connections" "$(number "$tps")" \
        "$(number "${BITBURST_RPS[$key]:-}")" "$(ratio "${BITBURST_RPS[$key]:-}" "$tps")" "$memory" \
        "$(millis "${BITBURST_P50[$key]:-}")" "$(millis "${BITBURST_P99[$key]:-}")" "${VERIFIED[$key]:-}"
}

TABLE=$(
    echo "| scenario | connections | pgbench tps | bitburst req/s | ratio | vs memory store | bitburst p50 / p99 ms | verified |"
    echo "|---|---:|---:|---:|---:|---:|---:|---|"
    for connections in "${CONNECTIONS[@]}"; do row add-random "$connections" add-memory; done
    for connections in "${CONNECTIONS[@]}"; do row add-hot "$connections" add-memory; done
    for connections in "${CONNECTIONS[@]}"; do row balance-read "$connections" balance-memory; done
    row add-memory "$MEMORY_CONNECTIONS"
    row balance-memory "$MEMORY_CONNECTIONS"
)

COMMIT=$(commit_description)
CPU=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)

cat >"$RESULTS/latest.md" <<EOF
# BitBurst benchmark, $(date -u '+%Y-%m-%d %H:%M UTC')

\`BENCH_SECONDS=$BENCH_SECONDS bench/run.sh\` at commit $COMMIT. Raw results: \`raw/$STAMP.jsonl\`.

$TABLE

![req/s by connections, pgbench vs BitBurst, and p99](latest.svg)

- **pgbench tps**: PostgreSQL running the service's own statements (\`bench/pgbench/\`), \`-M prepared -j 2 -c N\`,
  for $BENCH_SECONDS s each. An add is the adapter's single CTE statement (upsert the account, insert the entry
  with \`balance_after\`) in autocommit: one transaction, one WAL flush.
- **bitburst req/s**: 2xx answers per second over HTTP from \`loadgen --connections N --duration $BENCH_SECONDS\`
  (closed loop, keep-alive), latency p50 / p99 of those answers. Adds carry a fresh Idempotency-Key each and
  no deliberate repeats (\`--repeat-share 0\`); users \`--users $USERS\` uniform, or one (\`--distribution hot\`).
  balance-read reads users that a seeding run of 30,000 adds wrote. add-memory and balance-memory are the
  same binary on its in-memory store (no PostgreSQL): the ceiling of HTTP and the service alone.
- **ratio**: bitburst req/s / pgbench tps. **vs memory store**: bitburst req/s / the memory store's rate for
  the same operation (adds: add-memory; reads: balance-memory). **verified**: loadgen's check that every acknowledged add is in
  the ledger exactly once and every balance is exact.
- BitBurst: pool size $POOL_SIZE (\`BITBURST_PG_POOL_SIZE\`), default log level. Everything (PostgreSQL, the
  service, loadgen or pgbench) shares this machine's cores, so the HTTP figures include loadgen's own CPU.

## Machine

- CPU: $CPU; \`nproc\`: $(nproc)
- Kernel: $(uname -r)
- PostgreSQL $PG_VERSION: $DURABILITY

\`\`\`
$(free -g)
\`\`\`
EOF

python3 "$REPO/bench/chart.py" "$RAW" --output "$RESULTS/latest.svg" --title "$COMMIT" >/dev/null \
    || log "the chart could not be drawn"

log "wrote $RESULTS/latest.md, $RESULTS/latest.svg and $RAW"
printf '%s\n' "$TABLE"
[[ $FAILED_RUNS == 0 ]] || die "$FAILED_RUNS measurement(s) failed or did not verify; see above"
