#!/bin/sh
# PostgreSQL entrypoint for the locally built test image. Honours the official
# image's interface: POSTGRES_USER, POSTGRES_PASSWORD, POSTGRES_DB,
# POSTGRES_HOST_AUTH_METHOD; extra arguments after "postgres" go to the server.
set -e
PGBIN=/usr/lib/postgresql/15/bin
PGDATA=${PGDATA:-/var/lib/postgresql/data}
USER=${POSTGRES_USER:-postgres}
DB=${POSTGRES_DB:-$USER}
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
  echo "host all all 0.0.0.0/0 $AUTH" >> "$PGDATA/pg_hba.conf"
  echo "host all all ::/0 $AUTH" >> "$PGDATA/pg_hba.conf"
  if [ "$DB" != postgres ]; then
    echo "CREATE DATABASE \"$DB\";" | su postgres -c "$PGBIN/postgres --single -D $PGDATA postgres" >/dev/null
  fi
fi
cd /tmp
exec su postgres -c "exec $PGBIN/postgres -D $PGDATA -c listen_addresses='*' $*"
