#!/usr/bin/env bash
# A team-style MLflow tracking server without Docker: PostgreSQL (from the system packages) as
# the backend store and `mlflow server` with proxied artifact access to a local folder, both on
# 127.0.0.1. The same topology as docker-compose.yml, for development and CI.
#
#   scripts/tracking-server.sh start    # prints the tracking URI
#   scripts/tracking-server.sh stop     # keeps the data for the next start
#   scripts/tracking-server.sh purge    # stops and deletes the data
#   scripts/tracking-server.sh status
#
# Settings (environment): POKEWATCH_SERVER_DIR (state: database, artifacts, logs; default
# ./.tracking-server), POKEWATCH_PG_PORT (default 54329), POKEWATCH_MLFLOW_PORT (default 5001),
# POKEWATCH_MLFLOW (the mlflow executable; default: the project's .venv/bin/mlflow, made by
# `uv sync`, else the one on PATH). No `uv run` needed in front.
set -euo pipefail
# No MLflow telemetry from the server, unless the user set the variables themselves.
if [ -z "${MLFLOW_DISABLE_TELEMETRY+x}${DO_NOT_TRACK+x}" ]; then
  export MLFLOW_DISABLE_TELEMETRY=true DO_NOT_TRACK=true
fi

STATE=$(realpath -m "${POKEWATCH_SERVER_DIR:-.tracking-server}")
PG_PORT=${POKEWATCH_PG_PORT:-54329}
MLFLOW_PORT=${POKEWATCH_MLFLOW_PORT:-5001}
PROJECT_MLFLOW="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/.venv/bin/mlflow"
if [ -n "${POKEWATCH_MLFLOW:-}" ]; then
  MLFLOW=$POKEWATCH_MLFLOW
elif [ -x "$PROJECT_MLFLOW" ]; then
  MLFLOW=$PROJECT_MLFLOW
else
  MLFLOW=mlflow
fi
URI=http://127.0.0.1:$MLFLOW_PORT
# PostgreSQL runs as the 'postgres' user when we are root, and that user may not be able to
# enter $STATE (a private temporary folder, say): its files then live in a folder of its own.
PG_DIR=$STATE/pg
if [ "$(id -u)" = 0 ]; then
  PG_DIR=/tmp/pokewatch-pg-$(printf '%s' "$STATE" | md5sum | cut -c1-12)
fi
PGDATA=$PG_DIR/data
# PostgreSQL uses password authentication (never trust: any local user could read and write
# the tracking data). The password is generated at the first start and lives only in 0600
# files of the PostgreSQL folder: PASSWORD for initdb, PGPASSFILE (libpq's password file) for
# psql, createdb and the mlflow server, so it is never on a command line or in an environment.
PASSWORD_FILE=$PG_DIR/password
export PGPASSFILE=$PG_DIR/pgpass

fail() {
  echo "tracking-server: $1" >&2
  for log in "$STATE"/*.log "$PG_DIR"/*.log; do
    [ -f "$log" ] && { echo "--- $log" >&2; tail -n 15 "$log" >&2; }
  done
  exit 1
}

pg_bin() {
  local dir
  dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  if [ -z "$dir" ]; then
    echo "tracking-server: PostgreSQL is not installed (apt-get install postgresql)" >&2
    exit 1
  fi
  echo "$dir"
}

# A random password in PASSWORD_FILE and PGPASSFILE, both 0600 and owned by PostgreSQL's user.
new_password() {
  local password
  password=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
  (
    umask 077
    printf '%s\n' "$password" >"$PASSWORD_FILE"
    printf '127.0.0.1:*:*:mlflow:%s\n' "$password" >"$PGPASSFILE"
  )
  if [ "$(id -u)" = 0 ]; then chown postgres "$PASSWORD_FILE" "$PGPASSFILE"; fi
}

# PostgreSQL refuses to run as root: run its tools as the 'postgres' user then.
as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

start() {
  local bin
  if ! command -v "$MLFLOW" >/dev/null 2>&1; then
    echo "tracking-server: mlflow not found: run 'uv sync' in the checkout first (or set POKEWATCH_MLFLOW)" >&2
    exit 1
  fi
  bin=$(pg_bin)
  mkdir -p "$STATE/artifacts" "$PG_DIR"
  if [ "$(id -u)" = 0 ]; then chown postgres "$PG_DIR"; chmod 700 "$PG_DIR"; fi
  if [ ! -f "$PGDATA/PG_VERSION" ]; then
    new_password
    as_pg "$bin/initdb" -D "$PGDATA" -U mlflow --auth=scram-sha-256 --pwfile="$PASSWORD_FILE" \
      >"$PG_DIR/initdb.log" 2>&1 || fail "initdb failed"
  elif [ ! -f "$PGPASSFILE" ]; then
    fail "$PGDATA has no password file (created with trust authentication?): run '$0 purge'"
  fi
  if ! as_pg "$bin/pg_ctl" -D "$PGDATA" status >/dev/null 2>&1; then
    as_pg "$bin/pg_ctl" -D "$PGDATA" -l "$PG_DIR/postgres.log" -w \
      -o "-p $PG_PORT -k $PG_DIR -c listen_addresses=127.0.0.1" start >/dev/null ||
      fail "PostgreSQL did not start"
  fi
  if curl -fsS "$URI/health" >/dev/null 2>&1; then  # already up: nothing to do
    echo "$URI"
    return 0
  fi
  as_pg "$bin/psql" -h 127.0.0.1 -p "$PG_PORT" -U mlflow -d postgres -tAc \
    "SELECT 1 FROM pg_database WHERE datname = 'mlflow'" | grep -q 1 ||
    as_pg "$bin/createdb" -h 127.0.0.1 -p "$PG_PORT" -U mlflow mlflow || fail "createdb failed"

  # its own session, so that stop reaches the web server's worker processes too
  setsid nohup "$MLFLOW" server \
    --backend-store-uri "postgresql://mlflow@127.0.0.1:$PG_PORT/mlflow" \
    --artifacts-destination "$STATE/artifacts" --serve-artifacts \
    --host 127.0.0.1 --port "$MLFLOW_PORT" \
    --allowed-hosts "127.0.0.1:$MLFLOW_PORT,localhost:$MLFLOW_PORT" \
    --workers 2 >"$STATE/mlflow.log" 2>&1 &
  echo $! >"$STATE/mlflow.pid"
  # wait on the process itself, not a fixed count: a loaded machine may take minutes to import
  # MLflow and migrate the store; a server that exits says why (the end of its log)
  local limit="${POKEWATCH_SERVER_START_SECONDS:-600}"
  local deadline=$(( $(date +%s) + limit ))
  while :; do
    if curl -fsS "$URI/health" >/dev/null 2>&1; then
      echo "$URI"
      return 0
    fi
    if ! kill -0 "$(cat "$STATE/mlflow.pid")" 2>/dev/null; then
      local why
      why="$(tail -n 3 "$STATE/mlflow.log" 2>/dev/null | tr '\n' ' ')"
      stop
      fail "mlflow server exited before answering /health: ${why:-no log} (log: $STATE/mlflow.log)"
    fi
    if [ "$(date +%s)" -ge "$deadline" ]; then
      stop
      fail "mlflow server did not answer /health within ${limit} s (log: $STATE/mlflow.log)"
    fi
    sleep 0.5
  done
}

stop() {
  if [ -f "$STATE/mlflow.pid" ]; then
    local pid
    pid=$(cat "$STATE/mlflow.pid")
    kill -TERM -- "-$pid" 2>/dev/null || true
    for _ in $(seq 1 40); do kill -0 -- "-$pid" 2>/dev/null || break; sleep 0.25; done
    kill -KILL -- "-$pid" 2>/dev/null || true
    rm -f "$STATE/mlflow.pid"
  fi
  if [ -f "$PGDATA/postmaster.pid" ]; then
    as_pg "$(pg_bin)/pg_ctl" -D "$PGDATA" -m fast -w stop >/dev/null || true
  fi
  if [ "${1:-}" = purge ]; then rm -rf "$PG_DIR" "$STATE"; fi
}

status() {
  if curl -fsS "$URI/health" >/dev/null 2>&1; then echo "running: $URI"; else echo "stopped"; fi
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  purge) stop purge ;;
  status) status ;;
  *) echo "usage: $0 start|stop|purge|status" >&2; exit 2 ;;
esac
