#!/usr/bin/env bash
# What high availability costs: BitBurst's adds on one PostgreSQL server next to the same adds on the
# two-node Patroni cluster of deploy/patroni (synchronous replication: a COMMIT waits for the standby),
# in one run on one machine. See README.md.
#
#   bench/ha.sh                        # about 5 minutes
#
# Environment: BENCH_SECONDS (10), BENCH_CONNECTIONS ("64 256"), BITBURST_PG_POOL_SIZE (32),
# BENCH_PG_BIN, BENCH_SKIP_BUILD=1 (use the binaries already in target/release).
set -euo pipefail

cd "$(dirname "$0")/.."
REPO=$(pwd)
BENCH_SECONDS=${BENCH_SECONDS:-10}
read -r -a CONNECTIONS <<<"${BENCH_CONNECTIONS:-64 256}"
POOL_SIZE=${BITBURST_PG_POOL_SIZE:-32}
USERS=10000
RESULTS=$REPO/bench/results
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
# shellcheck source=bench/lib.sh
source "$REPO/bench/lib.sh"

[[ $BENCH_SECONDS =~ ^[1-9][0-9]*$ ]] || die "BENCH_SECONDS must be a whole number of seconds, not '$BENCH_SECONDS'"
require_tools
for program in patroni etcd curl; do
    command -v "$program" >/dev/null || die "$program is missing (Debian: apt-get install patroni etcd-server curl)"
done
[[ -x /usr/lib/postgresql/15/bin/postgres ]] || die "deploy/patroni runs PostgreSQL 15 (apt-get install postgresql-15)"
build_binaries app loadgen

make_workdir
CLUSTER_PIDS=()
stop_extras() {
    # Patroni stops its PostgreSQL on SIGTERM; etcd goes last.
    local pid
    for pid in "${CLUSTER_PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${CLUSTER_PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    CLUSTER_PIDS=()
    # Whatever outlived its agent (a postmaster of a node that was still starting).
    pkill -KILL -f -- "$WORK/patroni" 2>/dev/null || true
}

declare -A RPS P99 VERIFIED
FAILED_RUNS=0
# measure SETUP SCENARIO CONNECTIONS LOADGEN-ARGS...: adds through the service on BITBURST_PORT.
measure() {
    local setup=$1 scenario=$2 connections=$3 key="$1/$2/$3" status=0 summary
    shift 3
    checkpoint
    LOADGEN_RUN_ID="ha-$STAMP-$setup-$scenario-c$connections" "$LOADGEN" --target "http://127.0.0.1:$BITBURST_PORT" \
        --connections "$connections" --duration "$BENCH_SECONDS" --progress-secs 0 --json --mix add=100 \
        --repeat-share 0 "$@" >"$WORK/loadgen.out" 2>"$WORK/loadgen.err" || status=$?
    summary=$(tail -n 1 "$WORK/loadgen.out")
    if [[ $status != 0 ]] || ! jq -e '.verify.ok' >/dev/null 2>&1 <<<"$summary"; then
        log "loadgen $key failed or did not verify (exit $status):"
        cat "$WORK/loadgen.out" "$WORK/loadgen.err" >&2
        FAILED_RUNS=$((FAILED_RUNS + 1))
        VERIFIED[$key]=FAILED
        return 0
    fi
    RPS[$key]=$(jq -r '.operations.add.requests_per_second' <<<"$summary")
    P99[$key]=$(jq -r '.operations.add.p99_us' <<<"$summary")
    VERIFIED[$key]=OK
    log "$key: ${RPS[$key]} adds/s, p99 ${P99[$key]} us, verified"
}

declare -A MEAN_BATCH
measure_setup() {
    local setup=$1 connections scrape
    for connections in "${CONNECTIONS[@]}"; do measure "$setup" add-random "$connections" --users "$USERS"; done
    for connections in "${CONNECTIONS[@]}"; do measure "$setup" add-hot "$connections" --distribution hot; done
    # Adds per group commit over all of the setup's runs: how much a slower COMMIT lets batches grow.
    scrape=$(curl -sf "http://127.0.0.1:$BITBURST_PORT/metrics")
    MEAN_BATCH[$setup]=$(awk '/^bitburst_pg_batch_size_sum / { sum = $2 } /^bitburst_pg_batch_size_count / { count = $2 }
        END { if (count > 0) printf "%.1f", sum / count; else print "-" }' <<<"$scrape")
}

# --- One server: the same settings as the cluster's nodes, without a standby ---------------------------
BENCH_PG_OPTIONS="-c wal_level=replica -c wal_log_hints=on ${BENCH_PG_OPTIONS:-}"
start_postgres
psql_q -d postgres -c "CREATE DATABASE ledger_bitburst"
BITBURST_PORT=$(free_port)
log "bitburst on one PostgreSQL server"
start_bitburst "$BITBURST_PORT" "postgres://bench:$PG_PASSWORD@127.0.0.1:$PG_PORT/ledger_bitburst"
measure_setup single
stop_bitburst
as_postgres "$PG_BIN/pg_ctl" -D "$PG_DATA" -m fast -w stop >/dev/null
PG_STARTED=0

# --- The Patroni cluster of deploy/patroni: etcd, a primary and a synchronous standby -------------------
CLUSTER=$WORK/patroni
mkdir -p "$CLUSTER"
is_root && chown postgres: "$CLUSTER"
fill() { # fill TEMPLATE NAME=VALUE...: the template with every {{NAME}} replaced
    local text
    text=$(<"$REPO/deploy/patroni/$1")
    shift
    for pair in "$@"; do text=${text//"{{${pair%%=*}}}"/${pair#*=}}; done
    grep -v '^[[:space:]]*#' <<<"$text" | grep -q '{{' && die "a placeholder of $1 is left unfilled"
    printf '%s\n' "$text"
}
spawn() { # spawn LOG COMMAND...: as the postgres user, in the background, remembered for the cleanup
    local log=$1
    shift
    if is_root; then
        (cd "$CLUSTER" && HOME=$CLUSTER exec setpriv --reuid=postgres --regid=postgres --init-groups -- "$@" >>"$log" 2>&1) &
    else
        (cd "$CLUSTER" && exec "$@" >>"$log" 2>&1) &
    fi
    CLUSTER_PIDS+=($!)
}
wait_for_url() { # wait_for_url URL WHAT: until it answers 200, at most 120 s
    for _ in $(seq 1 600); do
        curl -sf -o /dev/null "$1" && return 0
        sleep 0.2
    done
    die "waited 120 s for $2"
}

ETCD_CLIENT=$(free_port)
fill etcd.yml NAME=etcd1 HOST=127.0.0.1 DATA_DIR="$CLUSTER/etcd" CLIENT_PORT="$ETCD_CLIENT" PEER_PORT="$(free_port)" \
    >"$CLUSTER/etcd.yml"
spawn "$CLUSTER/etcd.log" etcd --config-file "$CLUSTER/etcd.yml"
SUPERUSER_PASSWORD=$(head -c 18 /dev/urandom | base64 | tr -dc 'A-Za-z0-9')
REPLICATION_PASSWORD=$(head -c 18 /dev/urandom | base64 | tr -dc 'A-Za-z0-9')
declare -a NODE_PG_PORT NODE_REST_PORT
for node in 1 2; do
    NODE_PG_PORT[node]=$(free_port)
    NODE_REST_PORT[node]=$(free_port)
    fill patroni.yml NAME="node$node" HOST=127.0.0.1 REST_PORT="${NODE_REST_PORT[node]}" PG_PORT="${NODE_PG_PORT[node]}" \
        DATA_DIR="$CLUSTER/node$node" RUN_DIR="$CLUSTER" ETCD_HOSTS="127.0.0.1:$ETCD_CLIENT" CLIENT_NETWORK=127.0.0.0/8 \
        SUPERUSER_PASSWORD="$SUPERUSER_PASSWORD" REPLICATION_PASSWORD="$REPLICATION_PASSWORD" ARCHIVE_COMMAND=/bin/true \
        >"$CLUSTER/node$node.yml"
    # The single server's memory settings, so that the two setups differ only by the standby.
    sed -i 's/^    logging_collector: "off"$/&\n    shared_buffers: 256MB/' "$CLUSTER/node$node.yml"
    is_root && chown postgres: "$CLUSTER/node$node.yml"
done
log "starting etcd and two Patroni nodes in $CLUSTER"
spawn "$CLUSTER/node1.log" patroni "$CLUSTER/node1.yml"
wait_for_url "http://127.0.0.1:${NODE_REST_PORT[1]}/primary" "node1 to bootstrap as the primary"
spawn "$CLUSTER/node2.log" patroni "$CLUSTER/node2.yml"
wait_for_url "http://127.0.0.1:${NODE_REST_PORT[2]}/sync" "node2 to stream as the synchronous standby"

export PGHOST=127.0.0.1 PGPORT=${NODE_PG_PORT[1]} PGUSER=postgres PGPASSWORD=$SUPERUSER_PASSWORD
LEDGER_PASSWORD=$(head -c 18 /dev/urandom | base64 | tr -dc 'A-Za-z0-9')
psql_q -d postgres -c "CREATE ROLE bitburst LOGIN PASSWORD '$LEDGER_PASSWORD'" -c "CREATE DATABASE bitburst OWNER bitburst"
REPLICATION=$(psql_q -d postgres -At -c "SELECT current_setting('synchronous_standby_names') || ' ' ||
    string_agg(application_name || '=' || sync_state, ' ') FROM pg_stat_replication")
log "replication: $REPLICATION"
[[ $REPLICATION == *"node2=sync"* ]] || die "node2 is not a synchronous standby: $REPLICATION"
BITBURST_PORT=$(free_port)
log "bitburst on the cluster (two-host DATABASE_URL)"
start_bitburst "$BITBURST_PORT" \
    "postgres://bitburst:$LEDGER_PASSWORD@127.0.0.1:${NODE_PG_PORT[1]},127.0.0.1:${NODE_PG_PORT[2]}/bitburst?target_session_attrs=read-write"
measure_setup ha
stop_bitburst
stop_extras

# --- The table --------------------------------------------------------------------------------------
TABLE=$(
    echo "| scenario | connections | one server adds/s | Patroni cluster adds/s | cluster / one server | p99 ms one server / cluster | verified |"
    echo "|---|---:|---:|---:|---:|---:|---|"
    for scenario in add-random add-hot; do
        for connections in "${CONNECTIONS[@]}"; do
            one=${RPS[single/$scenario/$connections]:-}
            two=${RPS[ha/$scenario/$connections]:-}
            awk -v s="$scenario" -v c="$connections" -v one="$one" -v two="$two" \
                -v p1="${P99[single/$scenario/$connections]:-}" -v p2="${P99[ha/$scenario/$connections]:-}" \
                -v v="${VERIFIED[single/$scenario/$connections]:-}/${VERIFIED[ha/$scenario/$connections]:-}" \
                'BEGIN { printf "| %s | %s | %.0f | %.0f | %s | %.1f / %.1f | %s |\n", s, c, one, two,
                         (one > 0 ? sprintf("%.2f", two / one) : "-"), p1 / 1000, p2 / 1000, v }'
        done
    done
)
COMMIT=$(commit_description)
cat >"$RESULTS/ha-latest.md" <<MD
# What high availability costs, $(date -u '+%Y-%m-%d %H:%M UTC')

\`BENCH_SECONDS=$BENCH_SECONDS bench/ha.sh\` at commit $COMMIT, on $(nproc) cores shared by PostgreSQL, the
service and loadgen. PostgreSQL $PG_VERSION.

$TABLE

- **one server**: one PostgreSQL with default durability (\`fsync\`, \`synchronous_commit\` on),
  \`wal_level=replica\`, \`wal_log_hints=on\`, \`shared_buffers=256MB\`, as the cluster's nodes.
- **Patroni cluster**: \`deploy/patroni\` on this machine, two nodes and one etcd, \`synchronous_mode: true\`
  (replication at the start: \`$REPLICATION\`): every COMMIT waits until the standby has flushed it. BitBurst
  gets both hosts in its \`DATABASE_URL\` with \`target_session_attrs=read-write\`.
- adds/s: acknowledged adds per second from \`loadgen --mix add=100 --repeat-share 0 --duration $BENCH_SECONDS\`
  (users \`--users $USERS\` uniform, or one hot user); each run verified afterwards (every acknowledged add in
  the ledger once, balances exact). Pool size $POOL_SIZE.
- Adds per group commit (\`bitburst_pg_batch_size\` sum / count over all runs of a setup): one server
  ${MEAN_BATCH[single]:-?}, cluster ${MEAN_BATCH[ha]:-?}.
- On one machine the standby competes for the same 2 cores: a standby on its own machine costs the primary
  a network round trip per commit instead, which group commit shares among the adds of a batch.
MD
log "wrote $RESULTS/ha-latest.md"
printf '%s\n' "$TABLE"
[[ $FAILED_RUNS == 0 ]] || die "$FAILED_RUNS measurement(s) failed or did not verify; see above"
