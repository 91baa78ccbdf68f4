#!/usr/bin/env bash
# Two builds of bitburst taking turns on one PostgreSQL server: random adds, each turn on a fresh database,
# for telling a change's cost from this machine's noise. See README.md.
#
#   bench/ab.sh BEFORE_BINARY AFTER_BINARY      # e.g. a worktree's target/release/bitburst, then ours
#
# Environment: AB_CONNECTIONS (256), AB_ROUNDS (3), AB_SECONDS (10), BITBURST_PG_POOL_SIZE (32),
# BENCH_PG_BIN. loadgen comes from target/release (cargo build --release -p loadgen).
set -euo pipefail

cd "$(dirname "$0")/.."
REPO=$(pwd)
POOL_SIZE=${BITBURST_PG_POOL_SIZE:-32}
CONNECTIONS=${AB_CONNECTIONS:-256}
ROUNDS=${AB_ROUNDS:-3}
SECONDS_EACH=${AB_SECONDS:-10}
LOADGEN=$REPO/target/release/loadgen
# shellcheck source=bench/lib.sh
source "$REPO/bench/lib.sh"

[[ $# == 2 && -x $1 && -x $2 ]] || die "usage: bench/ab.sh BEFORE_BINARY AFTER_BINARY (both executable)"
[[ -x $LOADGEN ]] || die "target/release/loadgen is missing: cargo build --release -p loadgen"
declare -A BINARIES=([before]=$1 [after]=$2)
require_tools
make_workdir
start_postgres
echo "| round | before: adds/s, p99 ms | after: adds/s, p99 ms |"
echo "|---:|---|---|"
for round in $(seq 1 "$ROUNDS"); do
    cells=()
    for which in before after; do
        BITBURST=${BINARIES[$which]}
        psql_q -d postgres -c "CREATE DATABASE ab_${which}_$round"
        port=$(free_port)
        start_bitburst "$port" "postgres://bench:$PG_PASSWORD@127.0.0.1:$PG_PORT/ab_${which}_$round"
        checkpoint
        summary=$("$LOADGEN" --target "http://127.0.0.1:$port" --connections "$CONNECTIONS" --duration "$SECONDS_EACH" \
            --users 10000 --mix add=100 --repeat-share 0 --progress-secs 0 --json 2>"$WORK/loadgen.err" | tail -n 1) \
            || die "loadgen failed or did not verify: $(tail -n 5 "$WORK/loadgen.err")"
        cells+=("$(jq -r '"\(.operations.add.requests_per_second | round), \(.operations.add.p99_us / 1000 | round)"' <<<"$summary")")
        stop_bitburst
    done
    echo "| $round | ${cells[0]} | ${cells[1]} |"
done
