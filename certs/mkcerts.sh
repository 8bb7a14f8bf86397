#!/bin/sh
# mkcerts.sh - build mqttd's development/test PKI with the openssl CLI.
#
# Usage: mkcerts.sh [-f] [-t ec|rsa] [--ocsp[=URL]] [OUTDIR]
#   OUTDIR  where to write (default: the directory of this script)
#   -f      regenerate everything, even files that are present and valid
#   -t      key type: ec (P-256, default, fast) or rsa (RSA-2048)
#   --ocsp  also (re)build OUTDIR/ocsp/, a PKI for OCSP whose certificates
#           name URL (default http://127.0.0.1:2560/) as their OCSP
#           responder (AIA); see "OCSP" below
#
# Files (see README.md):
#   ca.key ca.crt                    test CA (10 years)
#   server.key server.crt            CN=localhost, SAN localhost/127.0.0.1/::1
#   client1..client3 .key .crt       CN=client1.., clientAuth
#   client-expired .key .crt         valid 2020-01-01..2020-01-02 only
#   client-revoked .key .crt         listed in crl.pem
#   client-nocn .key .crt            subject O=mqttd test, no CN
#   other-ca.key other-ca.crt        a second, unrelated CA
#   client-otherca .key .crt         signed by other-ca
#   crl.pem                          CRL of ca.crt (revokes client-revoked)
#   dhparam.pem                      ffdhe2048 parameters (for dhparamfile)
#   ca.cnf index.txt serial ...      the `openssl ca` state behind crl.pem
#
# OCSP (--ocsp), in OUTDIR/ocsp/, rebuilt on every run:
#   ca.key ca.crt ca.cnf index.txt   its own CA, the index `openssl ocsp` reads
#   ocsp-signer .key .crt            delegated responder, EKU OCSPSigning
#   server .key .crt                 CN=localhost, AIA OCSP URL (stapling)
#   client-good client-good2 .key .crt   good (AIA OCSP URL)
#   client-revoked .key .crt         revoked (keyCompromise) in index.txt
#   client-unknown .key .crt         signed by the CA, not in index.txt
#   rogue-signer .key .crt           signed by the CA, no OCSPSigning EKU
#
# Idempotent: a file set that is present and valid (key matches the
# certificate, signed by the current CA, not expiring within a day, key of
# the requested type) is kept; a new CA regenerates everything below it.
# Private keys are created mode 0600. These keys are unencrypted test keys:
# never use them in production.
set -eu

force=0
ktype=ec
ocsp_url=
usage() {
    echo "usage: $0 [-f] [-t ec|rsa] [--ocsp[=URL]] [OUTDIR]" >&2
    exit 2
}
# --ocsp[=URL] is a long option: take it out before getopts
for a in "$@"; do
    shift
    case "$a" in
    --ocsp) ocsp_url=http://127.0.0.1:2560/ ;;
    --ocsp=http://*) ocsp_url=${a#--ocsp=} ;;
    --ocsp=*) usage ;;
    *) set -- "$@" "$a" ;;
    esac
done
while getopts "ft:h" opt; do
    case "$opt" in
    f) force=1 ;;
    t) ktype=$OPTARG ;;
    *) usage ;;
    esac
done
shift $((OPTIND - 1))
[ $# -le 1 ] || usage
case "$ktype" in
ec) kbits=256 ;;
rsa) kbits=2048 ;;
*) usage ;;
esac

if [ $# -eq 1 ]; then
    out=$1
else
    out=$(dirname "$0")
fi
mkdir -p "$out"
cd "$out"
umask 022

log=$(mktemp "${TMPDIR:-/tmp}/mkcerts.XXXXXX")
trap 'rm -f "$log"' EXIT

# run CMD...: run quietly; on failure show its output and stop.
run() {
    if ! "$@" >"$log" 2>&1; then
        echo "mkcerts.sh: failed: $*" >&2
        cat "$log" >&2
        exit 1
    fi
}

GENERATED="ca.key ca.crt server.key server.crt
    client1.key client1.crt client2.key client2.crt client3.key client3.crt
    client-expired.key client-expired.crt client-revoked.key client-revoked.crt
    client-nocn.key client-nocn.crt other-ca.key other-ca.crt
    client-otherca.key client-otherca.crt crl.pem dhparam.pem
    ca.cnf index.txt index.txt.attr index.txt.old index.txt.attr.old
    serial serial.old crlnumber crlnumber.old other-ca.srl"

wipe() {
    # shellcheck disable=SC2086
    rm -f $GENERATED ./*.csr
    rm -rf newcerts
}

# newkey FILE: a private key of the requested type, mode 0600.
newkey() {
    rm -f "$1"
    if [ "$ktype" = ec ]; then
        (umask 077 && run openssl genpkey -algorithm EC \
            -pkeyopt ec_paramgen_curve:P-256 -out "$1")
    else
        (umask 077 && run openssl genpkey -algorithm RSA \
            -pkeyopt rsa_keygen_bits:2048 -out "$1")
    fi
    chmod 600 "$1"
}

# pair_ok NAME: NAME.key and NAME.crt exist, the key has the requested type
# and matches the certificate.
pair_ok() {
    [ -s "$1.key" ] && [ -s "$1.crt" ] || return 1
    b=$(openssl pkey -in "$1.key" -noout -text 2>/dev/null | head -n 1)
    case "$b" in
    *"($kbits bit"*) ;;
    *) return 1 ;;
    esac
    k=$(openssl pkey -in "$1.key" -pubout 2>/dev/null) || return 1
    c=$(openssl x509 -in "$1.crt" -noout -pubkey 2>/dev/null) || return 1
    [ "$k" = "$c" ]
}

# leaf_ok NAME CAFILE [expired]: pair_ok, signed by CAFILE, and (unless
# 'expired') valid for at least one more day.
leaf_ok() {
    pair_ok "$1" || return 1
    if [ "${3:-}" = expired ]; then
        openssl verify -no_check_time -CAfile "$2" "$1.crt" >/dev/null 2>&1
    else
        openssl verify -CAfile "$2" "$1.crt" >/dev/null 2>&1 &&
            openssl x509 -in "$1.crt" -noout -checkend 86400 >/dev/null
    fi
}

write_cnf() {
    cat >ca.cnf <<'EOF'
# Generated by mkcerts.sh: the minimal `openssl ca` setup of the test CA.
[ ca ]
default_ca = mqttd_test_ca

[ mqttd_test_ca ]
dir = .
database = $dir/index.txt
new_certs_dir = $dir/newcerts
certificate = $dir/ca.crt
private_key = $dir/ca.key
serial = $dir/serial
crlnumber = $dir/crlnumber
default_md = sha256
default_days = 825
default_crl_days = 365
policy = policy_any
unique_subject = no
copy_extensions = none
email_in_dn = no

[ policy_any ]
organizationName = optional
commonName = optional

[ req ]
distinguished_name = req_dn
prompt = no
[ req_dn ]
CN = unused

[ ext_ca ]
basicConstraints = critical, CA:true
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always

[ ext_server ]
basicConstraints = critical, CA:false
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1, IP:::1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid, issuer

[ ext_client ]
basicConstraints = critical, CA:false
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid, issuer
EOF
}

# selfsigned NAME SUBJECT: a CA certificate valid for 10 years.
selfsigned() {
    newkey "$1.key"
    run openssl req -config ca.cnf -new -x509 -key "$1.key" -subj "$2" \
        -days 3650 -sha256 -extensions ext_ca -out "$1.crt"
}

# issue NAME SUBJECT EXT [ca options...]: NAME.key + NAME.crt from the
# test CA via `openssl ca` (so it is in index.txt and can be revoked).
issue() {
    n=$1 s=$2 e=$3
    shift 3
    newkey "$n.key"
    run openssl req -config ca.cnf -new -key "$n.key" -subj "$s" \
        -out "$n.csr"
    rm -f "$n.crt"
    run openssl ca -config ca.cnf -batch -notext -extensions "$e" \
        -in "$n.csr" -out "$n.crt" "$@"
    rm -f "$n.csr"
}

[ "$force" -eq 0 ] || wipe

changed=0

# --- the test CA; a new one invalidates everything it signed --------------
if [ ! -s ca.cnf ] || [ ! -f index.txt ] || [ ! -s serial ] ||
    ! pair_ok ca ||
    ! openssl x509 -in ca.crt -noout -checkend 2592000 >/dev/null 2>&1; then
    wipe
    write_cnf
    mkdir -p newcerts
    : >index.txt
    echo "unique_subject = no" >index.txt.attr
    echo "01$(openssl rand -hex 7)" >serial
    echo 01 >crlnumber
    selfsigned ca "/O=mqttd test/CN=mqttd test CA"
    changed=1
fi
mkdir -p newcerts

# --- leaves of the test CA -------------------------------------------------
if ! leaf_ok server ca.crt; then
    issue server "/O=mqttd test/CN=localhost" ext_server
    changed=1
fi
for i in 1 2 3; do
    if ! leaf_ok "client$i" ca.crt; then
        issue "client$i" "/O=mqttd test/CN=client$i" ext_client
        changed=1
    fi
done
if ! leaf_ok client-expired ca.crt expired; then
    issue client-expired "/O=mqttd test/CN=client-expired" ext_client \
        -startdate 20200101000000Z -enddate 20200102000000Z
    changed=1
fi
if ! leaf_ok client-nocn ca.crt; then
    issue client-nocn "/O=mqttd test" ext_client
    changed=1
fi
if ! leaf_ok client-revoked ca.crt; then
    issue client-revoked "/O=mqttd test/CN=client-revoked" ext_client
    run openssl ca -config ca.cnf -batch -revoke client-revoked.crt \
        -crl_reason keyCompromise
    changed=1
fi

# --- the CRL: regenerated when anything changed or it no longer verifies ---
if [ "$changed" -eq 1 ] || [ ! -s crl.pem ] ||
    ! openssl verify -crl_check -CRLfile crl.pem -CAfile ca.crt \
        client1.crt >/dev/null 2>&1; then
    run openssl ca -config ca.cnf -batch -gencrl -out crl.pem
fi

# --- an unrelated CA and a client it signed --------------------------------
if ! pair_ok other-ca ||
    ! openssl x509 -in other-ca.crt -noout -checkend 2592000 >/dev/null 2>&1
then
    selfsigned other-ca "/O=mqttd other/CN=mqttd other CA"
    rm -f client-otherca.crt
fi
if ! leaf_ok client-otherca other-ca.crt; then
    newkey client-otherca.key
    run openssl req -config ca.cnf -new -key client-otherca.key \
        -subj "/O=mqttd other/CN=client-otherca" -out client-otherca.csr
    run openssl x509 -req -in client-otherca.csr -CA other-ca.crt \
        -CAkey other-ca.key -set_serial "0x$(openssl rand -hex 8)" \
        -days 825 -sha256 -extfile ca.cnf -extensions ext_client \
        -out client-otherca.crt
    rm -f client-otherca.csr
fi

# --- DH parameters: the RFC 7919 ffdhe2048 group (no slow generation) -----
if [ ! -s dhparam.pem ]; then
    run openssl genpkey -genparam -algorithm DH \
        -pkeyopt group:ffdhe2048 -out dhparam.pem
fi

# --- OCSP: a CA whose certificates point at a responder (--ocsp) ---------
if [ -n "$ocsp_url" ]; then
    rm -rf ocsp
    mkdir -p ocsp/newcerts
    (
        cd ocsp
        write_cnf
        cat >>ca.cnf <<EOF

[ ext_ocsp_signer ]
basicConstraints = critical, CA:false
keyUsage = critical, digitalSignature
extendedKeyUsage = OCSPSigning
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid, issuer

[ ext_server_aia ]
basicConstraints = critical, CA:false
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1, IP:::1
authorityInfoAccess = OCSP;URI:$ocsp_url
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid, issuer

[ ext_client_aia ]
basicConstraints = critical, CA:false
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = clientAuth
authorityInfoAccess = OCSP;URI:$ocsp_url
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid, issuer
EOF
        : >index.txt
        echo "unique_subject = no" >index.txt.attr
        echo "01$(openssl rand -hex 7)" >serial
        echo 01 >crlnumber
        selfsigned ca "/O=mqttd test/CN=mqttd OCSP test CA"
        issue ocsp-signer "/O=mqttd test/CN=mqttd OCSP responder" \
            ext_ocsp_signer
        issue server "/O=mqttd test/CN=localhost" ext_server_aia
        issue client-good "/O=mqttd test/CN=client-good" ext_client_aia
        issue client-good2 "/O=mqttd test/CN=client-good2" ext_client_aia
        issue client-revoked "/O=mqttd test/CN=client-revoked" ext_client_aia
        run openssl ca -config ca.cnf -batch -revoke client-revoked.crt \
            -crl_reason keyCompromise
        issue rogue-signer "/O=mqttd test/CN=rogue signer" ext_client
        # not through `openssl ca`: absent from index.txt, so "unknown"
        newkey client-unknown.key
        run openssl req -config ca.cnf -new -key client-unknown.key \
            -subj "/O=mqttd test/CN=client-unknown" -out client-unknown.csr
        run openssl x509 -req -in client-unknown.csr -CA ca.crt \
            -CAkey ca.key -set_serial "0x$(openssl rand -hex 8)" -days 825 \
            -sha256 -extfile ca.cnf -extensions ext_client_aia \
            -out client-unknown.crt
        rm -f client-unknown.csr
    )
fi

exit 0
