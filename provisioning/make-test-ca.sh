#!/bin/bash
# Make a TEST certificate authority, a broker (server) certificate and device client
# certificates with openssl, for trying the TLS set-up before the authority's real PKI
# exists. Never use these in production: the CA key sits unprotected beside them.
#
#   make-test-ca.sh [--out DIR] [--server NAME] [--ip ADDR] [--days N] [DEVICE_ID...]
#
# DIR (default ./test-ca) gets ca.crt/ca.key, server.crt/server.key (subjectAltName
# DNS:NAME and IP:ADDR), and DEVICE_ID.crt/DEVICE_ID.key per device, whose common name
# is the device id (mosquitto's `use_identity_as_username true` makes it the MQTT
# username, so the per-device ACL patterns apply). An existing CA is reused, so devices
# can be added later; check a chain with `openssl verify -CAfile DIR/ca.crt DIR/X.crt`.
# Names reserved for central (kiosk/assets/reserved-names.txt) are refused.
set -euo pipefail

reserved_names=$(dirname "$0")/../kiosk/assets/reserved-names.txt

out=./test-ca
server=localhost
ip=127.0.0.1
days=825
devices=()

usage() {
    sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'
    exit "${1:-0}"
}

while [ $# -gt 0 ]; do
    case "$1" in
        --out) out=${2:?--out needs a folder}; shift 2 ;;
        --server) server=${2:?--server needs a host name}; shift 2 ;;
        --ip) ip=${2:?--ip needs an address}; shift 2 ;;
        --days) days=${2:?--days needs a number}; shift 2 ;;
        -h|--help) usage 0 ;;
        -*) echo "make-test-ca.sh: unknown option $1" >&2; usage 2 ;;
        *) devices+=("$1"); shift ;;
    esac
done

# reserved ID: the reserved-names pattern ID matches, if any (a certificate with CN=central
# would log in as central's broker user).
reserved() {
    local pattern
    while read -r pattern; do
        [[ -z $pattern || $pattern == \#* ]] && continue
        # shellcheck disable=SC2053  # the pattern is a glob on purpose
        if [[ $1 == $pattern ]]; then
            echo "$pattern"
            return 0
        fi
    done <"$reserved_names"
    return 1
}

if [ ! -r "$reserved_names" ]; then
    echo "make-test-ca.sh: cannot read $reserved_names: run the script from the kiosk source tree" >&2
    exit 2
fi
for id in "${devices[@]}"; do
    if ! [[ $id =~ ^[a-z0-9][a-z0-9._-]{0,63}$ ]]; then
        echo "make-test-ca.sh: '$id' is not a device id (lower-case letters, digits, . _ -)" >&2
        exit 2
    fi
    if pattern=$(reserved "$id"); then
        echo "make-test-ca.sh: '$id' is reserved for the authority's services (matches '$pattern'); choose another" >&2
        exit 2
    fi
done

mkdir -p "$out"
umask 077

new_key() {
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null
}

make_ca() {
    [ -f "$out/ca.crt" ] && [ -f "$out/ca.key" ] && return 0
    new_key "$out/ca.key"
    openssl req -x509 -new -key "$out/ca.key" -sha256 -days "$days" -subj "/CN=kiosk TEST CA" \
        -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" \
        -out "$out/ca.crt"
}

# sign NAME CN USAGE SAN: a leaf certificate NAME.crt/NAME.key signed by the CA.
sign() {
    local name=$1 cn=$2 usage=$3 san=$4 ext
    ext=$(mktemp)
    {
        echo "basicConstraints=critical,CA:FALSE"
        echo "keyUsage=critical,digitalSignature,keyEncipherment"
        echo "extendedKeyUsage=$usage"
        echo "subjectKeyIdentifier=hash"
        echo "authorityKeyIdentifier=keyid"
        [ -n "$san" ] && echo "subjectAltName=$san"
    } >"$ext"
    new_key "$out/$name.key"
    openssl req -new -key "$out/$name.key" -subj "/CN=$cn" -out "$out/$name.csr"
    openssl x509 -req -in "$out/$name.csr" -CA "$out/ca.crt" -CAkey "$out/ca.key" -CAcreateserial \
        -sha256 -days "$days" -extfile "$ext" -out "$out/$name.crt" 2>/dev/null
    rm -f "$ext" "$out/$name.csr"
}

make_ca
sign server "$server" serverAuth "DNS:$server,IP:$ip"
for id in "${devices[@]}"; do
    sign "$id" "$id" clientAuth ""
done
chmod 644 "$out"/*.crt
echo "test CA in $out: ca.crt, server.crt/.key${devices[*]:+, device certificates for ${devices[*]}}"
