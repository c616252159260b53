"""The drive page's TLS certificate: self-signed, made on the rover on first use, then reused.

A rover on a field's Wi-Fi has no public name a certificate authority could vouch for, so
the page is served with a certificate the rover makes itself. A phone warns the first
time; the person checks the certificate's SHA-256 fingerprint (the browser shows it) against
the one ``edgeact drive`` prints beside the URL and puts in the QR code, and accepts it.
Kept and reused, so the phone asks once, not at every start.

Files, in ``~/.config/edgeact/tls/`` (``$XDG_CONFIG_HOME`` when set; ``--cert-dir`` elsewhere)::

    drive-cert.pem   the certificate (0644)
    drive-key.pem    its private key (0600; the folder is 0700)

What is made: an ECDSA P-256 key, signed with SHA-256, the rover's names and addresses as
subject alternative names (browsers ignore the common name), ``serverAuth`` extended key use,
not a CA (Firefox refuses a CA certificate as a server's), valid ``VALID_DAYS`` (Apple's
devices refuse server certificates valid longer than 825 days). Reused while it has
``RENEW_DAYS`` left and names every address the page is served on; otherwise a new one is
made for the same key, naming the old names and the new ones (the phone then asks again).

Needs ``cryptography`` (the ``drive`` extra; PyPI has aarch64 wheels for the Pi).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import ipaddress
import logging
import os
import socket
import ssl
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path

from edgeact.errors import ConfigError

log = logging.getLogger("edgeact.drive")

CERT_FILE = "drive-cert.pem"
KEY_FILE = "drive-key.pem"
VALID_DAYS = 800  # under Apple's 825-day limit for TLS server certificates
RENEW_DAYS = 30  # make a new one when fewer days than this are left


@dataclass(frozen=True)
class Certificate:
    """A certificate on disk and what a person or a test needs to check it."""

    cert_path: Path
    key_path: Path
    sha256: str  # of the DER certificate, "AB:CD:…": what a browser's certificate viewer shows
    spki_sha256: str  # base64 SHA-256 of the public key: an RFC 7469 pin (--ignore-certificate-errors-spki-list)
    names: tuple[str, ...]  # the subject alternative names
    not_after: dt.datetime
    made: str  # "" when reused; otherwise why a new one was made

    def ssl_context(self) -> ssl.SSLContext:
        """A server-side TLS context (TLS 1.2 at least) serving this certificate."""
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(self.cert_path, self.key_path)
        return ctx


def default_dir() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "edgeact" / "tls"


def ensure_certificate(directory: str | os.PathLike | None, names: list[str],
                       now: dt.datetime | None = None) -> Certificate:
    """The certificate in ``directory`` (default :func:`default_dir`), made or renewed so that it
    names every one of ``names`` (host names and IP addresses) and is valid for a while yet."""
    folder = Path(directory) if directory is not None else default_dir()
    try:
        return _ensure(folder, _unique(names), now or dt.datetime.now(dt.timezone.utc))
    except OSError as err:
        raise ConfigError(f"cannot keep the drive page's certificate in {folder} ({err}); give a folder this user "
                          "can write with --cert-dir") from err


def _ensure(folder: Path, wanted: list[str], now: dt.datetime) -> Certificate:
    from cryptography.hazmat.primitives import serialization

    x509, _, _ = _crypto()
    cert_path, key_path = folder / CERT_FILE, folder / KEY_FILE
    key = _load_or_make_key(folder, key_path)
    old = _load_cert(cert_path)
    why = _why_new(old, key, wanted, now)
    if not why:
        assert old is not None
        return _describe(old, cert_path, key_path, "")
    keep = _san_names(old) if old is not None and "names" in why else []
    cert = _make_cert(key, _unique([*keep, *wanted]), now)
    _write(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    log.warning("TLS certificate %s: %s", cert_path, why)
    return _describe(x509.load_pem_x509_certificate(cert_path.read_bytes()), cert_path, key_path, why)


def local_names(host: str) -> list[str]:
    """The names a phone may use to reach this machine when the page listens on ``host``:
    ``host`` itself unless it is a wildcard, else the host name (and ``NAME.local``, mDNS),
    every non-link-local address of every interface, and the loopback names."""
    names = ["localhost", "127.0.0.1", "::1"]
    if host not in ("", "0.0.0.0", "::"):
        return [host, *names]
    hostname = socket.gethostname()
    names += [hostname] if "." in hostname else [hostname, f"{hostname}.local"]
    return [*names, *_interface_addresses()]


def fingerprint(der: bytes) -> str:
    """SHA-256 of a DER certificate as browsers print it: upper-case hex pairs joined by colons."""
    digest = hashlib.sha256(der).hexdigest().upper()
    return ":".join(digest[i:i + 2] for i in range(0, len(digest), 2))


# ---- internals ------------------------------------------------------------------------------------


def _crypto():
    try:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec
    except ImportError as err:
        raise ConfigError(f"the drive page over HTTPS needs cryptography ({err}): "
                          "pip install 'edgeact[drive]'") from err
    return x509, hashes, ec


def _unique(names: list[str]) -> list[str]:
    seen: dict[str, None] = {}
    for n in names:
        if n:
            seen.setdefault(n.lower(), None)
    return list(seen)


def _load_or_make_key(folder: Path, key_path: Path):
    from cryptography.hazmat.primitives import serialization

    _, _, ec = _crypto()
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    if key_path.exists():
        mode = key_path.stat().st_mode & 0o777
        if mode & 0o077:
            log.warning("%s was readable by others (mode %o): set to 0600", key_path, mode)
            key_path.chmod(0o600)
        try:
            return serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        except (ValueError, TypeError) as err:
            raise ConfigError(f"{key_path} is not a readable private key ({err}); delete {folder} to make a new "
                              "certificate (phones will ask to accept it again)") from err
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    _write(key_path, pem, 0o600)
    return key


def _load_cert(path: Path):
    x509, _, _ = _crypto()
    try:
        return x509.load_pem_x509_certificate(path.read_bytes())
    except (OSError, ValueError):
        return None


def _why_new(cert, key, wanted: list[str], now: dt.datetime) -> str:
    """Empty when ``cert`` can be reused, else why a new one is made."""
    from cryptography.hazmat.primitives import serialization

    if cert is None:
        return "made (none yet)"
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    if cert.public_key().public_bytes(serialization.Encoding.DER, spki) != \
            key.public_key().public_bytes(serialization.Encoding.DER, spki):
        return "made again (it did not belong to the key beside it)"
    if cert.not_valid_after_utc - now < dt.timedelta(days=RENEW_DAYS):
        return f"renewed (it expires {cert.not_valid_after_utc:%Y-%m-%d})"
    missing = [n for n in wanted if n not in _san_names(cert)]
    if missing:
        return f"made again for new names ({', '.join(missing)} were not in it; the old names are kept)"
    return ""


def _san_names(cert) -> list[str]:
    x509, _, _ = _crypto()
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return [n.lower() for n in san.get_values_for_type(x509.DNSName)] + \
        [str(ip) for ip in san.get_values_for_type(x509.IPAddress)]


def _make_cert(key, names: list[str], now: dt.datetime):
    x509, hashes, _ = _crypto()
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    alt = []
    for n in names:
        try:
            alt.append(x509.IPAddress(ipaddress.ip_address(n)))
        except ValueError:
            alt.append(x509.DNSName(n))
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"edgeact drive on {socket.gethostname()}"[:64])])
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(now - dt.timedelta(minutes=5))  # a phone's clock a little behind
               .not_valid_after(now + dt.timedelta(days=VALID_DAYS))
               .add_extension(x509.SubjectAlternativeName(alt), critical=False)
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                            data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                            crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
               .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False))
    return builder.sign(key, hashes.SHA256())


def _describe(cert, cert_path: Path, key_path: Path, made: str) -> Certificate:
    from cryptography.hazmat.primitives import serialization

    der = cert.public_bytes(serialization.Encoding.DER)
    spki = cert.public_key().public_bytes(serialization.Encoding.DER,
                                          serialization.PublicFormat.SubjectPublicKeyInfo)
    return Certificate(cert_path, key_path, fingerprint(der), base64.b64encode(hashlib.sha256(spki).digest()).decode(),
                       tuple(_san_names(cert)), cert.not_valid_after_utc, made)


def _write(path: Path, data: bytes, mode: int) -> None:
    """Atomically, created with ``mode`` from the start (a key is never readable by others, even briefly)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)  # created 0600
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _interface_addresses() -> list[str]:
    """Every IPv4 and global IPv6 address of this machine's interfaces (Linux), else the outgoing one."""
    found: list[str] = []
    try:
        import fcntl

        siocgifaddr = 0x8915
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            for _, name in socket.if_nameindex():
                try:
                    packed = fcntl.ioctl(s.fileno(), siocgifaddr, struct.pack("256s", name.encode()[:15]))
                except OSError:
                    continue  # no IPv4 address on this interface
                found.append(socket.inet_ntoa(packed[20:24]))
    except (ImportError, OSError, AttributeError):
        pass
    try:
        for line in Path("/proc/net/if_inet6").read_text().splitlines():
            addr = ipaddress.IPv6Address(bytes.fromhex(line.split()[0]))
            if not (addr.is_link_local or addr.is_loopback):
                found.append(str(addr))
    except (OSError, ValueError, IndexError):
        pass
    outgoing = outgoing_address()
    return found or ([outgoing] if outgoing else [])


def outgoing_address() -> str | None:
    """The address of the interface that reaches the LAN (what to print for a page bound to all of them)."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("10.255.255.255", 1))  # no packet is sent; picks the outgoing interface
            return str(s.getsockname()[0])
    except OSError:
        return None
