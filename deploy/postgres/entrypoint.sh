#!/usr/bin/env bash
# On first start (empty PGDATA): initdb with POSTGRES_USER / POSTGRES_PASSWORD (required)
# and create POSTGRES_DB; then run the server, reachable with a password from any host of
# the compose network.
set -euo pipefail
: "${POSTGRES_PASSWORD:?set POSTGRES_PASSWORD}"
USER_NAME="${POSTGRES_USER:-airflow}"
DB_NAME="${POSTGRES_DB:-airflow}"

if [[ ! -s "$PGDATA/PG_VERSION" ]]; then
    pwfile="$(mktemp)"
    printf '%s\n' "$POSTGRES_PASSWORD" >"$pwfile"
    initdb --pgdata="$PGDATA" --username="$USER_NAME" --pwfile="$pwfile" \
        --auth-local=trust --auth-host=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8
    rm -f "$pwfile"
    echo "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
    # single-user mode: no server, no socket, nothing can race the creation
    if [[ "$DB_NAME" != "postgres" ]]; then
        echo "CREATE DATABASE \"$DB_NAME\" OWNER \"$USER_NAME\"" | postgres --single -D "$PGDATA" -j postgres >/dev/null
    fi
fi
unset POSTGRES_PASSWORD
exec postgres -D "$PGDATA" -c listen_addresses='*'
