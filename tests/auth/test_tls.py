"""HTTPS: ``serve --tls-cert/--tls-key`` with a private CA made by trustme; keep-alive."""

from __future__ import annotations

import hashlib
import http.client
import os
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from dockyard.api.socketbody import DIRECT_MIN
from tests.auth.conftest import AuthFiles, dockyard, write_config
from tests.auth.serve import serve
from tests.auth.sessions import basic
from tests.clients.server import Dockyard


@pytest.fixture
def ca() -> trustme.CA:
    return trustme.CA(organization_name="Dockyard test CA")


@pytest.fixture
def https_server(
    ca: trustme.CA, tmp_path: Path, data_dir: Path, auth_files: AuthFiles
) -> Iterator[Dockyard]:
    """A basic-mode server serving HTTPS with a certificate for 127.0.0.1 from ``ca``."""
    cert = ca.issue_cert("127.0.0.1", "localhost")
    chain, key = tmp_path / "server-chain.pem", tmp_path / "server-key.pem"
    cert.cert_chain_pems[0].write_to_path(str(chain))
    for pem in cert.cert_chain_pems[1:]:
        pem.write_to_path(str(chain), append=True)
    cert.private_key_pem.write_to_path(str(key))
    config = write_config(tmp_path / "dockyard.toml", data_dir, auth_files, "basic")
    server = serve(config, tmp_path / "server.log", "--tls-cert", str(chain), "--tls-key", str(key))
    yield server
    assert server.stop() == 0, server.log_since(0)[-3000:]


def _connect(ca: trustme.CA, server: Dockyard) -> http.client.HTTPSConnection:
    """An HTTPS connection to ``server`` that trusts ``ca``."""
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return http.client.HTTPSConnection("127.0.0.1", server.port, context=context)


def test_https_with_a_private_ca_and_keep_alive(ca: trustme.CA, https_server: Dockyard) -> None:
    assert "listening on https://127.0.0.1:" in https_server.log_since(0)
    conn = _connect(ca, https_server)
    try:
        conn.request("GET", "/v2/", headers=basic("alice"))
        first = conn.getresponse()
        assert first.status == 200
        assert first.read() == b"{}"
        assert first.headers.get("Connection", "").lower() != "close"
        sock = conn.sock
        conn.request("GET", "/v2/")
        second = conn.getresponse()
        assert second.status == 401
        assert second.headers["WWW-Authenticate"].startswith("Basic ")
        second.read()
        assert conn.sock is sock  # the same TLS connection served both: HTTP/1.1 keep-alive
        assert isinstance(sock, ssl.SSLSocket)
        assert sock.version() in ("TLSv1.2", "TLSv1.3")
    finally:
        conn.close()


def test_a_large_upload_over_tls_goes_the_usual_way(ca: trustme.CA, https_server: Dockyard) -> None:
    """Bodies are read straight off the socket only on plain HTTP: over TLS a large
    upload is decrypted by the event loop, and the connection stays open."""
    data = os.urandom(DIRECT_MIN + 5)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    conn = _connect(ca, https_server)
    try:
        conn.request("POST", "/v2/team-a/big/blobs/uploads/", headers=basic("alice"))
        started = conn.getresponse()
        started.read()
        assert started.status == 202
        sock = conn.sock
        conn.request(
            "PUT",
            f"{started.headers['Location']}?digest={digest}",
            body=data,
            headers={**basic("alice"), "Content-Type": "application/octet-stream"},
        )
        finished = conn.getresponse()
        assert finished.status == 201, finished.read()
        finished.read()
        assert finished.headers.get("Connection", "").lower() != "close"
        conn.request("GET", f"/v2/team-a/big/blobs/{digest}", headers=basic("alice"))
        fetched = conn.getresponse()
        assert fetched.status == 200
        assert fetched.read() == data
        assert conn.sock is sock
    finally:
        conn.close()


def test_a_client_without_the_ca_refuses_the_certificate(https_server: Dockyard) -> None:
    conn = http.client.HTTPSConnection(
        "127.0.0.1", https_server.port, context=ssl.create_default_context(), timeout=10
    )
    with pytest.raises(ssl.SSLCertVerificationError):
        conn.request("GET", "/v2/")
    conn.close()


def test_plain_http_on_the_https_port_gets_no_registry_answer(https_server: Dockyard) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", https_server.port, timeout=10)
    try:
        # The TLS handshake fails on a cleartext request: the connection just closes.
        conn.request("GET", "/v2/", headers=basic("alice"))
        with pytest.raises((ConnectionError, http.client.HTTPException)):
            conn.getresponse()
    finally:
        conn.close()


def test_tls_needs_both_certificate_and_key(tmp_path: Path) -> None:
    config = tmp_path / "dockyard.toml"
    config.write_text('[server]\ntls_cert = "/etc/ssl/cert.pem"\n')
    done = dockyard("config", "check", "--config", str(config), check=False)
    assert done.returncode == 2
    assert "server: " in done.stderr
    assert "tls_key" in done.stderr


def test_an_unreadable_certificate_stops_the_server(tmp_path: Path) -> None:
    config = tmp_path / "dockyard.toml"
    config.write_text(f'[server]\ndata_dir = "{tmp_path / "data"}"\n')
    done = dockyard(
        "serve", "--config", str(config), "--port", "0",
        "--tls-cert", str(tmp_path / "missing.pem"), "--tls-key", str(tmp_path / "key.pem"),
        check=False,
    )  # fmt: skip
    assert done.returncode != 0
    assert "cannot load TLS certificate" in done.stderr


@pytest.mark.parametrize(
    ("host", "mode", "tls", "warning"),
    [
        ("0.0.0.0", "none", False, "WITHOUT AUTHENTICATION"),
        ("10.1.2.3", "basic", False, "plain HTTP"),
        ("0.0.0.0", "token", True, None),
        ("127.0.0.1", "none", False, None),
        ("::1", "none", False, None),
    ],
)
def test_start_warns_when_the_registry_is_exposed(
    caplog: pytest.LogCaptureFixture, host: str, mode: str, tls: bool, warning: str | None
) -> None:
    from dockyard.config import load_settings
    from dockyard.server import _warn_if_exposed

    settings = load_settings(overrides={"auth": {"mode": mode}})
    _warn_if_exposed(settings, host, tls)
    if warning is None:
        assert not caplog.records
    else:
        assert warning in caplog.text
        assert caplog.records[0].levelname == "WARNING"
