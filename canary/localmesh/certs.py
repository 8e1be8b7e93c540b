"""A small certificate authority for the local mesh: workload identities and a gateway's cert.

In a cluster, istiod (Citadel) signs each sidecar a short-lived certificate whose only SAN is the
workload's SPIFFE identity, `spiffe://<trust domain>/ns/<namespace>/sa/<service account>`, and
every sidecar trusts the one mesh root. The local mesh does the same with files, so its Envoys can
hold mTLS to the same rules (`ISTIO_MUTUAL` checks the peer's SPIFFE identity, not a DNS name),
and an ingress gateway can terminate TLS for an external host with a certificate its clients
trust through the same root.

Keys are ECDSA P-256, as Istio's default; certificates last a day (a demo or a test run is
shorter, and a stale state directory is then refused by Envoy rather than trusted for a year).
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

TRUST_DOMAIN = "cluster.local"
LIFETIME = datetime.timedelta(days=1)
# Clocks of the processes that check a cert may lag the one that signed it by a little.
BACKDATE = datetime.timedelta(minutes=5)


def spiffe_id(namespace: str, service_account: str, trust_domain: str = TRUST_DOMAIN) -> str:
    return f"spiffe://{trust_domain}/ns/{namespace}/sa/{service_account}"


@dataclass(frozen=True, slots=True)
class Issued:
    """The PEM files of one certificate: its chain (leaf then CA), its key, and the root."""

    cert_chain: Path
    private_key: Path
    root: Path


class LocalCA:
    """A root key and certificate kept in `directory`; `issue` signs leaves with it."""

    def __init__(self, directory: Path, key: ec.EllipticCurvePrivateKey, cert: x509.Certificate):
        self.directory = directory
        self._key = key
        self._cert = cert

    @property
    def root(self) -> Path:
        return self.directory / "root-cert.pem"

    @classmethod
    def create(cls, directory: Path, name: str = "canary local mesh CA") -> LocalCA:
        """A new root in `directory` (made if missing); an existing one there is replaced."""
        directory.mkdir(parents=True, exist_ok=True)
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, TRUST_DOMAIN),
                x509.NameAttribute(NameOID.COMMON_NAME, name),
            ]
        )
        now = _now()
        cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - BACKDATE)
            .not_valid_after(now + LIFETIME)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
            .sign(key, hashes.SHA256())
        )
        ca = cls(directory, key, cert)
        _write(ca.root, cert.public_bytes(serialization.Encoding.PEM))
        return ca

    def issue(
        self,
        name: str,
        *,
        uris: tuple[str, ...] = (),
        dns_names: tuple[str, ...] = (),
        ips: tuple[str, ...] = (),
    ) -> Issued:
        """A leaf for both TLS roles (a sidecar is client and server), written as `name`-*.pem.

        Its SANs are exactly the given ones: a workload's is its SPIFFE URI alone, as Citadel
        issues it; a gateway's are the external host names it serves.
        """
        if not (uris or dns_names or ips):
            raise ValueError(f"certificate {name!r} needs at least one SAN")
        key = ec.generate_private_key(ec.SECP256R1())
        sans: list[x509.GeneralName] = [x509.UniformResourceIdentifier(u) for u in uris]
        sans += [x509.DNSName(d) for d in dns_names]
        sans += [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
        now = _now()
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, name)]))
            .issuer_name(self._cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - BACKDATE)
            .not_valid_after(now + LIFETIME)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                critical=False,
            )
            # Istio marks a SPIFFE-only SAN critical, since the subject is empty of meaning.
            .add_extension(x509.SubjectAlternativeName(sans), critical=bool(uris))
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key()), False
            )
            .sign(self._key, hashes.SHA256())
        )
        pem = serialization.Encoding.PEM
        chain = self.directory / f"{name}-cert-chain.pem"
        key_file = self.directory / f"{name}-key.pem"
        _write(chain, cert.public_bytes(pem) + self._cert.public_bytes(pem))
        _write(
            key_file,
            key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
        )
        return Issued(cert_chain=chain, private_key=key_file, root=self.root)


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _write(path: Path, data: bytes) -> None:
    path.write_bytes(data)
    path.chmod(0o600)
