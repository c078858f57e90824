#!/bin/sh
# S3-compatible server (moto) for the locally built test image, on port 5000
# like the motoserver/moto image.
export PYTHONPATH=/opt/moto
exec python3 -m moto.server -H 0.0.0.0 -p 5000
