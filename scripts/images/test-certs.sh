#!/bin/sh
# Makes the test TLS material in DIR (default /var/tmp/maint-test-certs), once:
#   ca.crt, ca.key              the test CA the images' server certificates come from
#   server.crt, server.key      for DNS:localhost, IP:127.0.0.1 and IP:::1, signed by ca
#   other-ca.crt, other-ca.key  an unrelated CA, for "another CA is refused" tests
# EC P-256 keys, ten years. Nothing is done when every file is there; otherwise all are made
# anew in a temporary directory that then replaces DIR.
set -eu
DIR=${1:-/var/tmp/maint-test-certs}
FILES="ca.crt ca.key server.crt server.key other-ca.crt other-ca.key"
missing=0
for f in $FILES; do [ -s "$DIR/$f" ] || missing=1; done
[ "$missing" = 0 ] && exit 0

tmp=$(mktemp -d "${DIR%/}.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
cat > "$tmp/openssl.cnf" <<'EOF'
[req]
distinguished_name = dn
[dn]
[ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[server]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1, IP:::1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
EOF
key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$tmp/$1" 2>/dev/null; }
ca() { # name subject
  key "$1.key"
  openssl req -x509 -new -key "$tmp/$1.key" -subj "$2" -days 3650 -config "$tmp/openssl.cnf" \
    -extensions ca -out "$tmp/$1.crt"
}
ca ca "/CN=aindusdb-maint test CA"
ca other-ca "/CN=aindusdb-maint other test CA"
key server.key
openssl req -new -key "$tmp/server.key" -subj /CN=localhost -config "$tmp/openssl.cnf" -out "$tmp/server.csr"
openssl x509 -req -in "$tmp/server.csr" -CA "$tmp/ca.crt" -CAkey "$tmp/ca.key" -set_serial "0x$(openssl rand -hex 8)" \
  -days 3650 -extfile "$tmp/openssl.cnf" -extensions server -out "$tmp/server.crt" 2>/dev/null
openssl verify -CAfile "$tmp/ca.crt" "$tmp/server.crt" >/dev/null
rm -f "$tmp/server.csr" "$tmp/openssl.cnf"
chmod 600 "$tmp"/*.key
chmod 755 "$tmp"
rm -rf "$DIR"
mv "$tmp" "$DIR"
trap - EXIT
