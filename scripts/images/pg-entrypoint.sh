#!/bin/sh
# PostgreSQL entrypoint for the locally built test images (15 from bookworm; 17 with
# pgvector from trixie: the major is the newest one installed in the image). Honours the
# official image's interface: POSTGRES_USER, POSTGRES_PASSWORD, POSTGRES_DB,
# POSTGRES_HOST_AUTH_METHOD; extra arguments after "postgres" go to the server.
# TLS: when the image carries /etc/maint-test-certs/server.{crt,key}, the server runs with
# ssl = on and that certificate (plain connections are still accepted); with
# MAINT_PG_HOSTSSL_ONLY=1, TCP connections are accepted over TLS only (pg_hba `hostssl`).
set -e
PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
PGDATA=${PGDATA:-/var/lib/postgresql/data}
USER=${POSTGRES_USER:-postgres}
DB=${POSTGRES_DB:-$USER}
CERTS=/etc/maint-test-certs
[ "${1:-postgres}" = postgres ] && [ $# -gt 0 ] && shift
mkdir -p "$PGDATA" /var/run/postgresql
chown -R postgres:postgres "$PGDATA" /var/run/postgresql
chmod 700 "$PGDATA"
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  if [ -n "$POSTGRES_PASSWORD" ]; then
    printf '%s\n' "$POSTGRES_PASSWORD" > /tmp/pwfile
    chown postgres /tmp/pwfile
    PWOPT="--pwfile=/tmp/pwfile"
    AUTH=${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}
  else
    PWOPT=""
    AUTH=${POSTGRES_HOST_AUTH_METHOD:-trust}
  fi
  su postgres -c "$PGBIN/initdb -D $PGDATA -U $USER --auth-local=trust --auth-host=$AUTH $PWOPT" >/dev/null
  rm -f /tmp/pwfile
  if [ "${MAINT_PG_HOSTSSL_ONLY:-0}" = 1 ]; then
    [ -f "$CERTS/server.key" ] || { echo "MAINT_PG_HOSTSSL_ONLY=1 but the image has no $CERTS/server.key" >&2; exit 1; }
    printf 'local all all trust\nhostssl all all 0.0.0.0/0 %s\nhostssl all all ::/0 %s\n' "$AUTH" "$AUTH" \
      > "$PGDATA/pg_hba.conf"
  else
    # `host` lines match TLS and plain connections alike.
    echo "host all all 0.0.0.0/0 $AUTH" >> "$PGDATA/pg_hba.conf"
    echo "host all all ::/0 $AUTH" >> "$PGDATA/pg_hba.conf"
  fi
  if [ -f "$CERTS/server.key" ]; then
    printf "ssl = on\nssl_cert_file = '%s'\nssl_key_file = '%s'\n" "$CERTS/server.crt" "$CERTS/server.key" \
      >> "$PGDATA/postgresql.conf"
  fi
  if [ "$DB" != postgres ]; then
    echo "CREATE DATABASE \"$DB\";" | su postgres -c "$PGBIN/postgres --single -D $PGDATA postgres" >/dev/null
  fi
fi
cd /tmp
exec su postgres -c "exec $PGBIN/postgres -D $PGDATA -c listen_addresses='*' $*"
