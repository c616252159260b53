"""The drive page's certificate: made once with a private key, reused, renewed for new names or
near its end, and made the way browsers (and Apple's rules) accept a server certificate."""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
import stat

import pytest

pytest.importorskip("cryptography", reason="the drive extra")
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from edgeact.errors import ConfigError
from edgeact.teleop.web.certificate import RENEW_DAYS, ensure_certificate, local_names

NAMES = ["localhost", "127.0.0.1", "::1", "rover", "rover.local", "192.168.4.1"]


def mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_made_on_first_use_with_a_private_key_then_reused(tmp_path):
    folder = tmp_path / "tls"
    first = ensure_certificate(folder, NAMES)
    assert first.made and first.cert_path.is_file() and first.key_path.is_file()
    assert mode(first.key_path) == 0o600 and mode(folder) == 0o700 and mode(first.cert_path) == 0o644
    assert sorted(folder.iterdir()) == sorted([first.cert_path, first.key_path])  # no temporary files left
    again = ensure_certificate(folder, NAMES)
    assert again.made == "" and again.sha256 == first.sha256 and again.spki_sha256 == first.spki_sha256
    assert len(first.sha256) == 95 and first.sha256.count(":") == 31  # AB:CD:… as browsers show it


def test_what_browsers_and_apple_devices_require_of_it(tmp_path):
    c = ensure_certificate(tmp_path, NAMES)
    cert = x509.load_pem_x509_certificate(c.cert_path.read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(san.get_values_for_type(x509.DNSName)) == {"localhost", "rover", "rover.local"}
    assert set(san.get_values_for_type(x509.IPAddress)) == {ipaddress.ip_address(a)
                                                            for a in ("127.0.0.1", "::1", "192.168.4.1")}
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False  # Firefox refuses CA certs
    assert ExtendedKeyUsageOID.SERVER_AUTH in cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert cert.not_valid_after_utc - cert.not_valid_before_utc <= dt.timedelta(days=825)  # Apple's limit
    assert cert.signature_hash_algorithm.name == "sha256"
    assert c.ssl_context().minimum_version >= ssl.TLSVersion.TLSv1_2  # the key loads beside the certificate


def test_a_new_address_or_the_end_of_its_validity_makes_a_new_one_for_the_same_key(tmp_path):
    first = ensure_certificate(tmp_path, NAMES)
    moved = ensure_certificate(tmp_path, [*NAMES, "10.0.0.7"])  # the rover joined another Wi-Fi
    assert "10.0.0.7" in moved.made and "10.0.0.7" in moved.names and "192.168.4.1" in moved.names
    assert moved.sha256 != first.sha256 and moved.spki_sha256 == first.spki_sha256
    later = dt.datetime.now(dt.timezone.utc) + (moved.not_after - dt.datetime.now(dt.timezone.utc)) \
        - dt.timedelta(days=RENEW_DAYS - 1)
    renewed = ensure_certificate(tmp_path, NAMES, now=later)
    assert "renewed" in renewed.made and renewed.not_after > moved.not_after


def test_a_key_readable_by_others_is_closed_and_a_broken_one_is_a_clear_error(tmp_path):
    c = ensure_certificate(tmp_path, NAMES)
    c.key_path.chmod(0o644)
    again = ensure_certificate(tmp_path, NAMES)
    assert mode(c.key_path) == 0o600 and again.sha256 == c.sha256
    c.key_path.write_text("not a key")
    with pytest.raises(ConfigError, match="not a readable private key.*delete"):
        ensure_certificate(tmp_path, NAMES)
    (tmp_path / "a-file").write_text("")
    with pytest.raises(ConfigError, match="cannot keep the drive page's certificate.*--cert-dir"):
        ensure_certificate(tmp_path / "a-file" / "tls", NAMES)


def test_the_names_a_phone_may_use():
    assert local_names("192.168.4.1")[0] == "192.168.4.1"
    names = local_names("0.0.0.0")
    assert {"localhost", "127.0.0.1"} <= set(names) and len(names) > 3
    assert not any(n.startswith("fe80") for n in names)  # link-local addresses need a zone: no phone URL uses them
