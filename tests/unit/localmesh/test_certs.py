"""The local CA's certificates verify the way Envoy will check them: chain to the root, SANs."""

from __future__ import annotations

import socket
import ssl
import threading
from pathlib import Path

import pytest
from cryptography import x509

from canary.localmesh.certs import LocalCA, spiffe_id


def test_a_workload_cert_carries_only_its_spiffe_identity(tmp_path: Path) -> None:
    ca = LocalCA.create(tmp_path)
    issued = ca.issue("reviews-v2", uris=(spiffe_id("shop", "reviews"),))
    leaf = x509.load_pem_x509_certificates(issued.cert_chain.read_bytes())[0]
    sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert sans.critical
    assert sans.value.get_values_for_type(x509.UniformResourceIdentifier) == [
        "spiffe://cluster.local/ns/shop/sa/reviews"
    ]
    assert sans.value.get_values_for_type(x509.DNSName) == []
    assert oct(issued.private_key.stat().st_mode & 0o777) == "0o600"


def test_a_leaf_without_a_san_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least one SAN"):
        LocalCA.create(tmp_path).issue("nobody")


def test_a_tls_handshake_trusts_the_root_and_checks_the_host(tmp_path: Path) -> None:
    ca = LocalCA.create(tmp_path)
    issued = ca.issue("gateway", dns_names=("shop.example.test",))
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(issued.cert_chain, issued.private_key)
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve_one() -> None:
        connection, _ = listener.accept()
        try:
            with server_context.wrap_socket(connection, server_side=True) as tls:
                tls.sendall(b"ok")
        except ssl.SSLError:
            pass  # the wrong-host client below aborts its handshake

    for host, trusted in (("shop.example.test", True), ("other.example.test", False)):
        thread = threading.Thread(target=serve_one, daemon=True)
        thread.start()
        client = ssl.create_default_context(cafile=str(ca.root))
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
            if trusted:
                with client.wrap_socket(raw, server_hostname=host) as tls:
                    assert tls.recv(2) == b"ok"
            else:
                with pytest.raises(ssl.SSLCertVerificationError):
                    client.wrap_socket(raw, server_hostname=host)
        thread.join(5)
    listener.close()
