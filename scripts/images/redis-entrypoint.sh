#!/bin/sh
# Redis entrypoint for the locally built test image; arguments after
# "redis-server" go to the server, as with the official image.
[ "${1:-redis-server}" = redis-server ] && [ $# -gt 0 ] && shift
exec redis-server --bind 0.0.0.0 --protected-mode no --save '' --appendonly no "$@"
