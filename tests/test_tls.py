"""TLS: an https endpoint's certificate must name the host the store connects to.

botocore builds its TLS context with ``check_hostname`` off (urllib3 matches host names
itself), and aiohttp relies on the context: a client handed that context accepts any
certificate the CA bundle trusts, whatever name it carries. These tests serve HTTPS on
127.0.0.1 with certificates from a throwaway CA (``AWS_CA_BUNDLE``): one for
``example.com`` (must be refused before any request reaches the server) and one for
``127.0.0.1`` (the control: the request arrives).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
from typing import TYPE_CHECKING, Any

import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from s3_eventstore import S3EventStore, StorageError
from s3_eventstore.demo.embedded import CREDENTIALS

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path


def _certificate(
    tmp: Path, name: str, san: x509.GeneralName, ca_key: Any, ca: x509.Certificate
) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([san]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    cert_path, key_path = tmp / f"{name}.pem", tmp / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("pki")
    ca_key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "s3-eventstore test CA")])
    now = dt.datetime.now(dt.UTC)
    ca = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    bundle = tmp / "ca.pem"
    bundle.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    wrong = _certificate(tmp, "example.com", x509.DNSName("example.com"), ca_key, ca)
    right = _certificate(
        tmp, "127.0.0.1", x509.IPAddress(ipaddress.ip_address("127.0.0.1")), ca_key, ca
    )
    return {
        "bundle": bundle,
        "wrong": wrong[0],
        "wrong_key": wrong[1],
        "right": right[0],
        "right_key": right[1],
    }


class HttpsServer:
    """Answers every request with S3's NoSuchKey, over TLS; counts what arrived."""

    def __init__(self) -> None:
        self.requests = 0
        self.endpoint_url = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.requests += 1
        body = (
            '<?xml version="1.0" encoding="UTF-8"?><Error><Code>NoSuchKey</Code>'
            "<Message>absent</Message></Error>"
        )
        return web.Response(status=404, text=body, content_type="application/xml")


async def _serve(cert: Path, key: Path) -> AsyncIterator[HttpsServer]:
    server = HttpsServer()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", server.handle)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    port = runner.addresses[0][1]
    server.endpoint_url = f"https://127.0.0.1:{port}"
    try:
        yield server
    finally:
        await runner.cleanup()


async def _read(server: HttpsServer, *, shared_session: bool = False) -> Any:
    """``get_turn`` through a store of ``server``: with the caller's aioboto3 session, or
    the library's shared one (credentials from the environment)."""
    import aioboto3

    store = S3EventStore(
        "bucket-1",
        "p",
        endpoint_url=server.endpoint_url,
        session=None if shared_session else aioboto3.Session(**CREDENTIALS),
        max_attempts=1,
    )
    async with store:
        return await store.get_turn("t", 1)


@pytest.mark.parametrize("shared_session", [False, True])
async def test_a_certificate_for_another_host_is_refused(
    pki: dict[str, Path], monkeypatch: pytest.MonkeyPatch, shared_session: bool
) -> None:
    monkeypatch.setenv("AWS_CA_BUNDLE", str(pki["bundle"]))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", CREDENTIALS["aws_access_key_id"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", CREDENTIALS["aws_secret_access_key"])
    async for server in _serve(pki["wrong"], pki["wrong_key"]):
        with pytest.raises(StorageError):
            await _read(server, shared_session=shared_session)
        assert server.requests == 0  # refused in the handshake: nothing was sent


async def test_a_certificate_for_the_host_is_accepted(
    pki: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The control: same CA, same server, a certificate naming 127.0.0.1."""
    monkeypatch.setenv("AWS_CA_BUNDLE", str(pki["bundle"]))
    async for server in _serve(pki["right"], pki["right_key"]):
        with pytest.raises(StorageError, match="NoSuchKey"):  # the server's answer
            await _read(server)
        assert server.requests >= 1
