#!/bin/sh
# Redis entrypoint for the locally built test image; arguments after
# "redis-server" go to the server, as with the official image.
# TLS: when the image carries /etc/maint-redis-certs/server.{crt,key} (scripts/test-env puts
# the test CA's server certificate there), the server also serves TLS on port 6380, without
# client certificates; port 6379 stays plain.
CERTS=/etc/maint-redis-certs
[ "${1:-redis-server}" = redis-server ] && [ $# -gt 0 ] && shift
if [ -f "$CERTS/server.key" ]; then
  set -- --tls-port 6380 --tls-cert-file "$CERTS/server.crt" --tls-key-file "$CERTS/server.key" \
    --tls-ca-cert-file "$CERTS/ca.crt" --tls-auth-clients no "$@"
fi
exec redis-server --bind 0.0.0.0 --protected-mode no --save '' --appendonly no "$@"
