# What the bench commands share: finding PostgreSQL, a throwaway server with the default durability, and
# starting and stopping the bitburst binary. Sourced by run.sh and audit.sh, from the repository root.
#
# The caller sets REPO and, before start_bitburst, BITBURST (the binary) and POOL_SIZE.

log() { printf 'bench: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

is_root() { [[ $(id -u) -eq 0 ]]; }

apt_install() {
    is_root || die "$* missing and not root: install it (Debian: apt-get install $*)"
    log "installing $* with apt-get"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >&2
}

# PostgreSQL's server binaries: BENCH_PG_BIN, else 15's Debian directory, else pg_config's, else the
# newest installed; installed with apt when there is none.
find_pg_bin() {
    local candidate
    for candidate in "${BENCH_PG_BIN:-}" /usr/lib/postgresql/15/bin "$(pg_config --bindir 2>/dev/null || true)" \
        $(printf "%s\n" /usr/lib/postgresql/*/bin | sort -V -r); do
        if [[ -n $candidate && -x $candidate/initdb && -x $candidate/pgbench ]]; then
            echo "$candidate"
            return 0
        fi
    done
    return 1
}

# Sets PG_BIN and makes sure jq and (as root) the postgres user exist.
require_tools() {
    PG_BIN=$(find_pg_bin) || { apt_install postgresql postgresql-contrib; PG_BIN=$(find_pg_bin) || die "no PostgreSQL binaries"; }
    command -v jq >/dev/null || apt_install jq
    if is_root; then id postgres >/dev/null 2>&1 || die "running as root needs the 'postgres' user (initdb refuses root)"; fi
}

as_postgres() {
    if is_root; then runuser -u postgres -- "$@"; else "$@"; fi
}

# A TCP port on 127.0.0.1 that nothing listens on.
free_port() {
    local port
    for _ in $(seq 1 200); do
        # Below the ephemeral range (32768+), where loadgen's own connections could hold the port.
        port=$((20000 + RANDOM % 12000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            echo "$port"
            return 0
        fi
    done
    die "no free port found"
}

# Everything a run starts lives in WORK and dies with the script, however it ends.
make_workdir() {
    WORK=$(mktemp -d "${TMPDIR:-/tmp}/bitburst-bench.XXXXXX")
    PG_DATA=$WORK/data
    PG_STARTED=0
    SERVER_PID=
    trap cleanup EXIT
    trap 'exit 130' INT TERM
}

cleanup() {
    local status=$?
    stop_bitburst
    # A script that starts more (bench/ha.sh: a Patroni cluster) stops it here too.
    if declare -F stop_extras >/dev/null; then stop_extras; fi
    if [[ $PG_STARTED == 1 ]]; then
        as_postgres "$PG_BIN/pg_ctl" -D "$PG_DATA" -m fast -w stop >/dev/null 2>&1 || true
    fi
    if [[ $status != 0 ]]; then
        log "failed (exit $status); last lines of the logs:"
        tail -n 20 "$WORK"/*.log >&2 2>/dev/null || true
    fi
    rm -rf "$WORK"
    exit "$status"
}

# A throwaway PostgreSQL in WORK with the default durability; exports PGHOST, PGPORT, PGUSER and
# PGPASSWORD for psql and sets PG_PORT, PG_PASSWORD, PG_VERSION and DURABILITY.
start_postgres() {
    is_root && chown postgres: "$WORK"
    PG_PORT=$(free_port)
    PG_PASSWORD=$(head -c 18 /dev/urandom | base64 | tr -dc 'A-Za-z0-9')
    printf '%s\n' "$PG_PASSWORD" >"$WORK/pwfile"
    is_root && chown postgres: "$WORK/pwfile"
    log "initdb in $WORK (PostgreSQL from $PG_BIN)"
    as_postgres "$PG_BIN/initdb" -D "$PG_DATA" -U bench --pwfile="$WORK/pwfile" -A scram-sha-256 -E UTF8 \
        --locale=C >"$WORK/initdb.log" 2>&1
    rm -f "$WORK/pwfile"
    # Only what the benchmark needs: fsync, synchronous_commit and full_page_writes keep their defaults (on).
    as_postgres "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$WORK/postgres.log" -w -t 60 start \
        -o "-c listen_addresses=127.0.0.1 -p $PG_PORT -k $WORK -c max_connections=400 -c shared_buffers=256MB ${BENCH_PG_OPTIONS:-}" >/dev/null
    PG_STARTED=1

    export PGHOST=127.0.0.1 PGPORT=$PG_PORT PGUSER=bench PGPASSWORD=$PG_PASSWORD
    DURABILITY=$(psql_q -d postgres -At -c "SELECT string_agg(name || '=' || current_setting(name), ' ' ORDER BY name) FROM pg_settings
        WHERE name IN ('fsync', 'synchronous_commit', 'full_page_writes', 'max_connections', 'shared_buffers', 'wal_level')")
    for setting in fsync=on synchronous_commit=on full_page_writes=on; do
        [[ " $DURABILITY " == *" $setting "* ]] || die "PostgreSQL must run with $setting (has: $DURABILITY)"
    done
    PG_VERSION=$(psql_q -d postgres -At -c "SHOW server_version")
    log "PostgreSQL $PG_VERSION on 127.0.0.1:$PG_PORT: $DURABILITY"
}

psql_q() { "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 "$@"; }

checkpoint() { psql_q -d postgres -c CHECKPOINT; }

http_ready() {
    local port=$1 line
    exec 3<>"/dev/tcp/127.0.0.1/$port" || return 1
    printf 'GET /readyz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' >&3
    IFS= read -r -t 2 line <&3 || true
    exec 3<&-
    [[ $line == "HTTP/1.1 200"* ]]
}

# start_bitburst PORT [DATABASE_URL]: without a URL the service keeps the ledger in memory. Waits
# BITBURST_READY_SECONDS (30) for /readyz, which includes the migrations.
start_bitburst() {
    local port=$1 url=${2:-} tries=$((${BITBURST_READY_SECONDS:-30} * 10))
    if [[ -n $url ]]; then
        env DATABASE_URL="$url" BITBURST_PG_POOL_SIZE="$POOL_SIZE" BITBURST_ADDR="127.0.0.1:$port" \
            "$BITBURST" >>"$WORK/bitburst.log" 2>&1 &
    else
        env -u DATABASE_URL BITBURST_ADDR="127.0.0.1:$port" "$BITBURST" >>"$WORK/bitburst.log" 2>&1 &
    fi
    SERVER_PID=$!
    for _ in $(seq 1 "$tries"); do
        if (http_ready "$port") 2>/dev/null; then return 0; fi
        kill -0 "$SERVER_PID" 2>/dev/null || die "bitburst exited during start-up"
        sleep 0.1
    done
    die "bitburst did not become ready on port $port"
}

stop_bitburst() {
    if [[ -n ${SERVER_PID:-} ]]; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
        SERVER_PID=
    fi
}

# seed_old_ledger DATABASE DEEP USERS: under the schema before the audit trail (as a ledger that is upgraded), one
# user "deep" with DEEP transactions one second apart, and USERS users with 10 transactions each.
seed_old_ledger() {
    local database=$1 deep=$2 users=$3 first_migration=$REPO/migrations/20261201000001_ledger.sql
    psql_q -d postgres -c "CREATE DATABASE $database"
    psql_q -d "$database" -f "$first_migration"
    # Recorded as sqlx records it, so that the service applies only the later migrations.
    psql_q -d "$database" <<SQL
CREATE TABLE _sqlx_migrations (version bigint PRIMARY KEY, description text NOT NULL,
    installed_on timestamptz NOT NULL DEFAULT now(), success boolean NOT NULL, checksum bytea NOT NULL,
    execution_time bigint NOT NULL);
INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time)
VALUES (20261201000001, 'ledger', true, decode('$(sha384sum "$first_migration" | cut -d' ' -f1)', 'hex'), 0);
SQL
    psql_q -d "$database" <<SQL
INSERT INTO accounts (user_id, balance) VALUES ('deep', $deep);
INSERT INTO ledger_entries (id, user_id, amount, balance_after, created_at)
SELECT gen_random_uuid(), 'deep', 1, n, timestamptz '2026-01-01 00:00:00+00' + n * interval '1 second'
FROM generate_series(1, $deep) AS n ORDER BY n;
INSERT INTO accounts (user_id, balance) SELECT 'user-' || u, 55 FROM generate_series(1, $users) AS u;
INSERT INTO ledger_entries (id, user_id, amount, balance_after, created_at)
SELECT gen_random_uuid(), 'user-' || u, k, k * (k + 1) / 2,
       timestamptz '2026-02-01 00:00:00+00' + u * interval '1 second' + k * interval '1 millisecond'
FROM generate_series(1, $users) AS u, generate_series(1, 10) AS k ORDER BY u, k;
SQL
}

# build_binaries PACKAGE...: `cargo build --release` of the packages (app, loadgen) unless
# BENCH_SKIP_BUILD=1, then sets BITBURST (and LOADGEN when asked for) to target/release's binaries.
build_binaries() {
    local package
    if [[ ${BENCH_SKIP_BUILD:-0} != 1 ]]; then
        log "building $* (release)"
        cargo build --release $(printf -- '-p %s ' "$@")
    fi
    BITBURST=$REPO/target/release/bitburst
    LOADGEN=$REPO/target/release/loadgen
    for package in "$@"; do
        case $package in
            app) [[ -x $BITBURST ]] || die "target/release/bitburst is missing" ;;
            loadgen) [[ -x $LOADGEN ]] || die "target/release/loadgen is missing" ;;
        esac
    done
}

# The commit the results come from, for their header.
commit_description() {
    local commit
    commit=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)
    [[ -n $(git -C "$REPO" status --porcelain 2>/dev/null) ]] && commit="$commit (with uncommitted changes)"
    echo "$commit"
}
