"""TLS material: a CA and a server certificate, created once per data directory with trustme."""

import ipaddress
import json
import os

import trustme


def _write(path, data):
    tmp = path + ".tmp"
    with open(tmp, "wb") as fh:
        fh.write(data)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def ensure_certs(data_dir, hosts):
    """Return (ca_file, cert_file, key_file) under data_dir/tls, reusing what exists.

    The server certificate names 127.0.0.1, ::1, localhost and every listener
    host; it is re-issued by the same CA when that list grows.
    """
    tls = os.path.join(data_dir, "tls")
    os.makedirs(tls, exist_ok=True)
    ca_cert, ca_key = os.path.join(tls, "ca.pem"), os.path.join(tls, "ca.key")
    cert, key, names_file = os.path.join(tls, "server.pem"), os.path.join(tls, "server.key"), os.path.join(tls, "names.json")
    if os.path.exists(ca_cert) and os.path.exists(ca_key):
        with open(ca_cert, "rb") as fh1, open(ca_key, "rb") as fh2:
            ca = trustme.CA.from_pem(fh1.read(), fh2.read())
    else:
        ca = trustme.CA(organization_name="k2sim test CA")
        _write(ca_key, ca.private_key_pem.bytes())
        _write(ca_cert, ca.cert_pem.bytes())
    names = {"127.0.0.1", "::1", "localhost"}
    for host in hosts:
        if host in ("", "0.0.0.0", "::"):
            continue
        try:
            names.add(str(ipaddress.ip_address(host)))
        except ValueError:
            names.add(host)
    old = set()
    if os.path.exists(names_file):
        with open(names_file) as fh:
            old = set(json.load(fh))
    if not (os.path.exists(cert) and os.path.exists(key)) or not names <= old:
        server = ca.issue_cert(*sorted(names | old))
        _write(key, server.private_key_pem.bytes())
        _write(cert, b"".join(blob.bytes() for blob in server.cert_chain_pems))
        _write(names_file, json.dumps(sorted(names | old)).encode("utf-8"))
    return ca_cert, cert, key
