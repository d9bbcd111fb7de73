#!/usr/bin/env bash
# A team MLflow tracking server on this Debian machine: PostgreSQL 15 backend store, artifacts served by the server
# (--serve-artifacts), MLflow's basic-auth app with an admin user.
#   sudo scripts/team_server.sh start    # installs Debian's postgresql if missing; last line: the tracking URI
#   sudo scripts/team_server.sh stop
# The server runs with the `python` on PATH (the environment facebias is installed in, with psycopg2-binary and
# mlflow[auth]). Settings (environment variables):
#   FACEBIAS_TEAM_SERVER_DIR   state: artifacts/, admin_password, server.log (default /var/lib/facebias-team-server)
#   FACEBIAS_TEAM_SERVER_HOST  address to bind (default 127.0.0.1: this machine only; see docs/user-guide/team-server.md before changing it)
#   FACEBIAS_TEAM_SERVER_PORT  port (default 5000)
#   FACEBIAS_TEAM_SERVER_DB    PostgreSQL database and role (default mlflow; the user database is <it>_auth)
#   FACEBIAS_TEAM_SERVER_WORKERS  server worker processes (default 4)
#   FACEBIAS_TEAM_SERVER_HEALTHCHECK_S  how long uvicorn waits for a busy worker to answer its health check before it
#                              restarts it, dropping the requests in flight (default 30; uvicorn's own is 5)
#   FACEBIAS_TEAM_SERVER_PG_CLUSTER  the PostgreSQL cluster (default main; another name creates that cluster on
#                              FACEBIAS_TEAM_SERVER_PG_PORT, default 5432: e.g. a server whose database can be
#                              restarted without touching the others)
#   FACEBIAS_TEAM_SERVER_START_TIMEOUT_S  how long to wait for the server to answer (default 300)
#   FACEBIAS_TEAM_SERVER_AUTH_CACHE_S  how long a server worker trusts a login it has checked (MLflow's
#                              auth_cache_ttl_seconds; default 60, 0 checks the password hash on every request)
#   MLFLOW_SERVER_ENABLE_JOB_EXECUTION  MLflow's job runner (huey consumer processes for MLflow's GenAI jobs, which
#                              facebias never submits): false unless set
# The admin password is created at the first start and kept in <dir>/admin_password (readable by root only).
# Running `start` again is harmless: a server already answering is left as it is.
set -euo pipefail

STATE=${FACEBIAS_TEAM_SERVER_DIR:-/var/lib/facebias-team-server}
HOST=${FACEBIAS_TEAM_SERVER_HOST:-127.0.0.1}
PORT=${FACEBIAS_TEAM_SERVER_PORT:-5000}
DB=${FACEBIAS_TEAM_SERVER_DB:-mlflow}
WORKERS=${FACEBIAS_TEAM_SERVER_WORKERS:-4}
HEALTHCHECK_S=${FACEBIAS_TEAM_SERVER_HEALTHCHECK_S:-30}
START_TIMEOUT_S=${FACEBIAS_TEAM_SERVER_START_TIMEOUT_S:-300}
AUTH_CACHE_S=${FACEBIAS_TEAM_SERVER_AUTH_CACHE_S:-60}
PG_VERSION=15
PG_CLUSTER=${FACEBIAS_TEAM_SERVER_PG_CLUSTER:-main}
PG_PORT=${FACEBIAS_TEAM_SERVER_PG_PORT:-5432}
URI="http://$HOST:$PORT"

die() { echo "team_server.sh: $*" >&2; exit 1; }
say() { echo "team_server.sh: $*"; }

secret() {  # secret FILE: a random token kept in FILE (created once, mode 600)
  [ -s "$1" ] || (umask 077 && head -c 24 /dev/urandom | base64 | tr -d '/+=' >"$1")
  cat "$1"
}

healthy() { python - "$URI/health" <<'PY' >/dev/null 2>&1
import sys, urllib.request
sys.exit(0 if urllib.request.urlopen(sys.argv[1], timeout=2).status == 200 else 1)
PY
}

start_postgres() {
  if ! command -v pg_ctlcluster >/dev/null 2>&1 || [ ! -x "/usr/lib/postgresql/$PG_VERSION/bin/postgres" ]; then
    say "installing postgresql-$PG_VERSION"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq "postgresql-$PG_VERSION" >/dev/null
  fi
  pg_lsclusters -h | grep -q "^$PG_VERSION $PG_CLUSTER " \
    || pg_createcluster --port "$PG_PORT" "$PG_VERSION" "$PG_CLUSTER" >/dev/null
  PG_PORT=$(pg_lsclusters -h | awk -v v="$PG_VERSION" -v c="$PG_CLUSTER" '$1 == v && $2 == c { print $3 }')
  pg_lsclusters -h | grep -q "^$PG_VERSION $PG_CLUSTER .* online" || pg_ctlcluster "$PG_VERSION" "$PG_CLUSTER" start
  local password
  password=$(secret "$STATE/db_password")
  runuser -u postgres -- psql -p "$PG_PORT" -q -v ON_ERROR_STOP=1 <<SQL
SELECT 'CREATE ROLE "$DB" LOGIN' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$DB')\gexec
ALTER ROLE "$DB" PASSWORD '$password';
SELECT 'CREATE DATABASE "$DB" OWNER "$DB"' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '$DB')\gexec
SELECT 'CREATE DATABASE "${DB}_auth" OWNER "$DB"'
  WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '${DB}_auth')\gexec
SQL
}

start() {
  [ "$(id -u)" -eq 0 ] || die "run it as root (it installs and starts PostgreSQL)"
  python -c "import mlflow, psycopg2, flask_wtf" 2>/dev/null \
    || die "the python on PATH ($(command -v python)) lacks mlflow, psycopg2 or Flask-WTF: pip install 'mlflow[auth]' psycopg2-binary"
  mkdir -p "$STATE/artifacts" && chmod 700 "$STATE"
  start_postgres
  if healthy; then
    say "a server already answers at $URI"
  else
    rm -f "$STATE/server.pid"
    # The password reaches libpq through PGPASSWORD, not the command line (which every local user can read).
    local store="postgresql+psycopg2://$DB@127.0.0.1:$PG_PORT"
    (umask 077 && cat >"$STATE/basic_auth.ini" <<INI
[mlflow]
default_permission = READ
database_uri = $store/${DB}_auth
admin_username = admin
admin_password = $(secret "$STATE/admin_password")
authorization_function = mlflow.server.auth:authenticate_request_basic_auth
auth_cache_ttl_seconds = $AUTH_CACHE_S
INI
)
    PGPASSWORD=$(cat "$STATE/db_password") MLFLOW_AUTH_CONFIG_PATH="$STATE/basic_auth.ini" \
      MLFLOW_FLASK_SERVER_SECRET_KEY=$(secret "$STATE/secret_key") \
      MLFLOW_SERVER_ENABLE_JOB_EXECUTION=${MLFLOW_SERVER_ENABLE_JOB_EXECUTION:-false} \
      setsid bash -c 'echo $$ >"$0"; exec "$@"' "$STATE/server.pid" python -m mlflow server --app-name basic-auth \
      --backend-store-uri "$store/$DB" --serve-artifacts --artifacts-destination "$STATE/artifacts" \
      --host "$HOST" --port "$PORT" --workers "$WORKERS" --uvicorn-opts "--timeout-worker-healthcheck $HEALTHCHECK_S" \
      >>"$STATE/server.log" 2>&1 </dev/null &
    for _ in $(seq 20); do [ -s "$STATE/server.pid" ] && break; sleep 0.1; done
    for _ in $(seq $((START_TIMEOUT_S * 2))); do
      healthy && break
      kill -0 "$(cat "$STATE/server.pid")" 2>/dev/null || die "the server stopped: see $STATE/server.log"
      sleep 0.5
    done
    healthy || { stop_server; die "the server did not answer at $URI within $START_TIMEOUT_S s: see $STATE/server.log"; }
  fi
  say "MLflow tracking server on PostgreSQL $PG_VERSION (cluster $PG_CLUSTER, database $DB), artifacts in $STATE/artifacts"
  say "log in as: export MLFLOW_TRACKING_USERNAME=admin MLFLOW_TRACKING_PASSWORD=\$(cat $STATE/admin_password)"
  echo "$URI"
}

stop_server() {  # end the server's process group (the server and its workers)
  if [ -s "$STATE/server.pid" ] && kill -0 "$(cat "$STATE/server.pid")" 2>/dev/null; then
    local group
    group=$(cat "$STATE/server.pid")
    kill -TERM -- "-$group"
    for _ in $(seq 20); do kill -0 -- "-$group" 2>/dev/null || break; sleep 0.5; done
    kill -KILL -- "-$group" 2>/dev/null || true
  fi
  rm -f "$STATE/server.pid"
}

stop() {
  [ "$(id -u)" -eq 0 ] || die "run it as root"
  stop_server
  if [ "${1:-}" != "--keep-database" ] && pg_lsclusters -h 2>/dev/null | grep -q "^$PG_VERSION $PG_CLUSTER .* online"; then
    pg_ctlcluster "$PG_VERSION" "$PG_CLUSTER" stop
  fi
  say "stopped"
}

case "${1:-}" in
  start) start ;;
  stop) stop "${2:-}" ;;
  *) die "usage: $0 start | stop [--keep-database]" ;;
esac
