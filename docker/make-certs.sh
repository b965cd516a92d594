#!/usr/bin/env bash
# Makes the certificates of Shoal's node-to-node TLS, offline, with openssl: a cluster CA and,
# for each node, a key and a certificate signed by that CA.
#
#   docker/make-certs.sh [--out DIR] [NAME...]
#
# DIR defaults to docker/certs (what compose.yaml mounts); the names default to the compose
# cluster's: coordinator worker1 worker2 worker3 worker4. Each NAME is the host the other nodes
# dial (the host of `--worker`/`add_node` addresses): it becomes the certificate's
# subjectAltName (an IP address when it looks like one), and the files are NAME.pem and
# NAME-key.pem. Every certificate is good for both ends of a connection (serverAuth and
# clientAuth), as each node is a server to some peers and a client of others.
#
# An existing CA in DIR is kept and signs the new certificates, so a node added later joins
# the same cluster: `docker/make-certs.sh worker5`. Existing node certificates are kept too.
# Remove DIR to start over with a new CA.
#
# The keys are readable by everyone (0644) because the image runs as uid 10001, which cannot
# read a key owned by you otherwise: fine for a dev cluster on your machine; elsewhere, give
# each key to the uid that runs the node, mode 0400, and keep ca-key.pem off the cluster.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
out="$here/certs"
if [[ "${1:-}" == "--out" ]]; then
    [[ $# -ge 2 ]] || { echo "usage: $0 [--out DIR] [NAME...]" >&2; exit 2; }
    out=$2
    shift 2
fi
names=("$@")
if [[ ${#names[@]} -eq 0 ]]; then
    names=(coordinator worker1 worker2 worker3 worker4)
fi
command -v openssl >/dev/null || { echo "make-certs: openssl is needed (apt-get install openssl)" >&2; exit 1; }

mkdir -p "$out"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

if [[ ! -f "$out/ca.pem" || ! -f "$out/ca-key.pem" ]]; then
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$out/ca-key.pem" 2>/dev/null
    chmod 600 "$out/ca-key.pem"
    openssl req -x509 -new -key "$out/ca-key.pem" -sha256 -days 3650 \
        -subj "/CN=Shoal cluster CA $(date -u +%Y-%m-%dT%H:%M:%SZ)" \
        -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" \
        -out "$out/ca.pem"
    echo "make-certs: new cluster CA $out/ca.pem"
fi

for name in "${names[@]}"; do
    if [[ ! "$name" =~ ^[A-Za-z0-9.:_-]+$ ]]; then
        echo "make-certs: $name is not a host name or address" >&2
        exit 2
    fi
    if [[ -f "$out/$name.pem" && -f "$out/$name-key.pem" ]]; then
        continue
    fi
    if [[ "$name" =~ ^[0-9.]+$ || "$name" == *:* ]]; then
        san="IP:$name"
    else
        san="DNS:$name"
    fi
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$work/key.pem" 2>/dev/null
    openssl req -new -key "$work/key.pem" -subj "/CN=$name" -out "$work/req.csr"
    cat >"$work/ext.cnf" <<EOF
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth,clientAuth
subjectAltName=$san
EOF
    openssl x509 -req -in "$work/req.csr" -CA "$out/ca.pem" -CAkey "$out/ca-key.pem" \
        -CAcreateserial -CAserial "$work/ca.srl" -sha256 -days 825 \
        -extfile "$work/ext.cnf" -out "$out/$name.pem" 2>/dev/null
    install -m 644 "$work/key.pem" "$out/$name-key.pem"
    echo "make-certs: $out/$name.pem ($san)"
done
