#!/usr/bin/env bash
# How long a restore takes: a ledger of about 1.1 million transactions (100,000 users), archived with
# pgBackRest (deploy/pgbackrest, a repository on local disk), backed up in full, then restored into a fresh
# data directory, recovered, and checked with `bitburst verify`. See README.md.
#
#   bench/restore.sh                   # about 5 minutes, most of it seeding and migrating
#
# Environment: BENCH_PG_BIN, BENCH_SKIP_BUILD=1 (use target/release/bitburst as it is).
set -euo pipefail

cd "$(dirname "$0")/.."
REPO=$(pwd)
POOL_SIZE=8
RESULTS=$REPO/bench/results
# shellcheck source=bench/lib.sh
source "$REPO/bench/lib.sh"

require_tools
command -v pgbackrest >/dev/null || apt_install pgbackrest
build_binaries app
make_workdir
RESTORED=$WORK/restored
RESTORED_STARTED=0
stop_extras() {
    if [[ $RESTORED_STARTED == 1 ]]; then as_postgres "$PG_BIN/pg_ctl" -D "$RESTORED" -m fast -w stop >/dev/null 2>&1 || true; fi
}
start_postgres

# --- Archiving through pgBackRest ------------------------------------------------------------------
CONFIG=$WORK/pgbackrest.conf
mkdir -p "$WORK/repo" "$WORK/pgbackrest-log" "$WORK/pgbackrest-lock"
sed -e "s|{{CONFIG}}|$CONFIG|g" -e "s|{{REPO_PATH}}|$WORK/repo|" -e "s|{{LOG_PATH}}|$WORK/pgbackrest-log|" \
    -e "s|{{LOCK_PATH}}|$WORK/pgbackrest-lock|" -e "s|{{DATA_DIR}}|$PG_DATA|" -e "s|{{PG_PORT}}|$PG_PORT|" \
    -e "s|{{SOCKET_DIR}}|$WORK|" -e "s|{{PG_USER}}|bench|" "$REPO/deploy/pgbackrest/pgbackrest.conf" >"$CONFIG"
grep -v '^#' "$CONFIG" | grep -q '{{' && die "a placeholder of pgbackrest.conf is left unfilled"
is_root && chown -R postgres: "$CONFIG" "$WORK/repo" "$WORK/pgbackrest-log" "$WORK/pgbackrest-lock"
pgbackrest_run() { as_postgres env PGPASSWORD="$PG_PASSWORD" pgbackrest --config="$CONFIG" --stanza=bitburst "$@"; }
psql_q -d postgres -c "ALTER SYSTEM SET archive_mode = on" \
    -c "ALTER SYSTEM SET archive_command = 'pgbackrest --config=$CONFIG --stanza=bitburst archive-push %p'"
as_postgres "$PG_BIN/pg_ctl" -D "$PG_DATA" -w -t 60 restart >/dev/null
pgbackrest_run stanza-create
pgbackrest_run check

# --- A ledger of 1.1 million transactions, upgraded by the service as a real one would be ------------
log "seeding 1.1 million transactions"
seed_old_ledger ledger 100000 99999
BITBURST_PORT=$(free_port)
BITBURST_READY_SECONDS=1800 start_bitburst "$BITBURST_PORT" "postgres://bench:$PG_PASSWORD@127.0.0.1:$PG_PORT/ledger"
stop_bitburst
ENTRIES=$(psql_q -d ledger -At -c "SELECT count(*) FROM ledger_entries")
DATABASE_SIZE=$(psql_q -d postgres -At -c "SELECT pg_size_pretty(sum(pg_database_size(datname))) FROM pg_database")

seconds_since() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }
log "full backup"
started=$(date +%s.%N)
pgbackrest_run backup --type=full
BACKUP_S=$(seconds_since "$started")
REPO_SIZE=$(du -sh "$WORK/repo" | cut -f1)

log "stopping the server, restoring into a fresh data directory"
as_postgres "$PG_BIN/pg_ctl" -D "$PG_DATA" -m fast -w stop >/dev/null
PG_STARTED=0
mkdir -m 700 "$RESTORED"
is_root && chown postgres: "$RESTORED"
started=$(date +%s.%N)
pgbackrest_run --pg1-path="$RESTORED" restore
RESTORE_FILES_S=$(seconds_since "$started")
RESTORED_PORT=$(free_port)
as_postgres "$PG_BIN/pg_ctl" -D "$RESTORED" -l "$WORK/restored.log" -w -t 600 start \
    -o "-c listen_addresses=127.0.0.1 -p $RESTORED_PORT -k $WORK -c max_connections=400 -c shared_buffers=256MB -c archive_mode=off" >/dev/null
RESTORED_STARTED=1
until [[ $(PGPORT=$RESTORED_PORT psql_q -d postgres -At -c "SELECT pg_is_in_recovery()") == f ]]; do sleep 0.1; done
RESTORE_S=$(seconds_since "$started")
log "verifying the restored ledger"
started=$(date +%s.%N)
VERIFY=$(DATABASE_URL="postgres://bench:$PG_PASSWORD@127.0.0.1:$RESTORED_PORT/ledger" "$BITBURST" verify --json)
VERIFY_S=$(seconds_since "$started")
VERDICT=$(jq -r 'if .clean then "clean (\(.transactions) transactions, \(.users) users)" else "NOT CLEAN: \(.findings | length) findings" end' <<<"$VERIFY")

COMMIT=$(commit_description)
cat >"$RESULTS/restore-latest.md" <<MD
# Restoring a ledger, $(date -u '+%Y-%m-%d %H:%M UTC')

\`bench/restore.sh\` at commit $COMMIT, PostgreSQL $PG_VERSION, pgBackRest $(pgbackrest version | cut -d' ' -f2)
(\`deploy/pgbackrest/pgbackrest.conf\`, lz4, a repository on the same local disk), $(nproc) cores.

| figure | value |
|---|---|
| ledger entries | $ENTRIES (100,000 users) |
| size of the server's databases | $DATABASE_SIZE |
| full backup | $BACKUP_S s, repository $REPO_SIZE |
| restore of the files (\`pgbackrest restore\`) | $RESTORE_FILES_S s |
| restore until the server accepts writes (files, WAL replay, promotion) | $RESTORE_S s |
| \`bitburst verify\` of the restored ledger | $VERIFY_S s: $VERDICT |

A repository across a network restores at that network's speed: time the drill where the repository
really is (see docs/operations.md).
MD
log "wrote $RESULTS/restore-latest.md"
cat "$RESULTS/restore-latest.md"
jq -e '.clean' >/dev/null <<<"$VERIFY" || die "the restored ledger did not verify"
