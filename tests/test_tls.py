"""``voice serve --tls-cert --tls-key``: wss:// and https:// without a proxy.

The certificate is made in the test with the README's ``openssl`` command; the clients
trust exactly that certificate, as a LAN user who imported it would.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import websockets
from openai import AsyncOpenAI

from tests.conftest import serve_until_exit
from tests.realtime_helpers import EventLog, say_text
from tests.tls_helpers import TlsServer, make_self_signed
from voice.tls import TlsConfigError, tls_files


def test_no_tls_files_means_plain() -> None:
    assert tls_files(None, None) is None


def test_cert_without_key_is_refused(tmp_path: Path) -> None:
    cert = make_self_signed(tmp_path)
    with pytest.raises(TlsConfigError, match=r"certificate .* is set but not the key"):
        tls_files(cert.cert, None)
    with pytest.raises(TlsConfigError, match=r"key .* is set but not the certificate"):
        tls_files(None, cert.key)


def test_missing_file_is_named(tmp_path: Path) -> None:
    cert = make_self_signed(tmp_path)
    with pytest.raises(TlsConfigError, match=r"missing file: .*nope\.pem"):
        tls_files(tmp_path / "nope.pem", cert.key)


def test_key_of_another_certificate_is_refused(tmp_path: Path) -> None:
    first = make_self_signed(tmp_path / "a")
    second = make_self_signed(tmp_path / "b")
    with pytest.raises(TlsConfigError, match="the key must be the certificate's own"):
        tls_files(first.cert, second.key)
    assert tls_files(first.cert, first.key) is not None


def test_serve_with_half_the_tls_settings_stops_at_once(tmp_path: Path) -> None:
    cert = make_self_signed(tmp_path / "tls")
    returncode, log = serve_until_exit(tmp_path, 60, args=("--tls-cert", str(cert.cert)))
    assert returncode == 2
    assert "voice serve: the TLS certificate" in log
    assert "is set but not the key (--tls-key, VOICE_TLS_KEY_FILE)" in log
    assert "loading models" not in log  # checked before the minute of loading


def _get(url: str, context: ssl.SSLContext, **headers: str) -> tuple[int, dict[str, object]]:
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10, context=context) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc)


@pytest.mark.e2e
def test_ready_line_names_the_tls_urls(tls_server: TlsServer) -> None:
    port = tls_server.port
    log = tls_server.process.log()
    assert f"wss://127.0.0.1:{port}/v1/realtime" in log
    assert f"(health: https://127.0.0.1:{port}/health)" in log
    assert f"web client: https://127.0.0.1:{port}/" in log


@pytest.mark.e2e
def test_health_over_https(tls_server: TlsServer) -> None:
    status, body = _get(f"{tls_server.https}/health", tls_server.cert.client_context())
    assert status == 200
    assert body["status"] == "ok"


@pytest.mark.e2e
def test_plain_http_is_not_served_on_the_tls_port(tls_server: TlsServer) -> None:
    with pytest.raises((urllib.error.URLError, ConnectionError, OSError)):
        urllib.request.urlopen(f"http://localhost:{tls_server.port}/health", timeout=10)


@pytest.mark.e2e
def test_an_untrusted_certificate_is_refused_by_the_client(tls_server: TlsServer) -> None:
    """The default trust store does not know the self-signed certificate: no silent trust."""
    with pytest.raises(urllib.error.URLError, match="CERTIFICATE_VERIFY_FAILED"):
        urllib.request.urlopen(f"{tls_server.https}/health", timeout=10)


@pytest.mark.e2e
def test_own_https_origin_is_the_servers_own(tls_server: TlsServer) -> None:
    """The page served at https://localhost:PORT/ may call its server; another page may not."""
    context = tls_server.cert.client_context()
    url = f"{tls_server.https}/v1/characters"
    own, _ = _get(url, context, Origin=tls_server.https)
    assert own == 200
    status, body = _get(url, context, Origin="https://evil.example")
    assert status == 403
    assert body["error"]["code"] == "origin_not_allowed"  # type: ignore[index]


@pytest.mark.e2e
async def test_own_https_origin_opens_a_websocket(tls_server: TlsServer) -> None:
    """What the web client at https://localhost:PORT/ does: a keyless wss:// call."""
    async with websockets.connect(
        f"{tls_server.wss_base}/realtime?model=voice",
        origin=websockets.Origin(tls_server.https),
        ssl=tls_server.cert.client_context(),
    ) as socket:
        first = json.loads(await asyncio.wait_for(socket.recv(), 10))
        assert first["type"] == "session.created"
    with pytest.raises(websockets.InvalidStatus) as refused:
        async with websockets.connect(
            f"{tls_server.wss_base}/realtime?model=voice",
            origin=websockets.Origin("https://evil.example"),
            ssl=tls_server.cert.client_context(),
        ):
            pass
    assert refused.value.response.status_code == 403


@pytest.mark.e2e
async def test_official_sdk_over_wss(tls_server: TlsServer) -> None:
    """The official Python SDK, trusting the certificate, holds a call over wss://."""
    client = AsyncOpenAI(
        api_key=tls_server.api_key,
        base_url=tls_server.https + "/v1",
        websocket_base_url=tls_server.wss_base,
    )
    async with client.realtime.connect(
        model="voice",
        websocket_connection_options={"ssl": tls_server.cert.client_context()},  # type: ignore[typeddict-unknown-key]
    ) as connection:
        log = EventLog(connection)
        try:
            await log.wait_for("session.created", timeout=10)
            # A short text reply: the point is the transport, not the model (cheap under load).
            await say_text(log, "Say hello.", output_modalities=["text"], max_output_tokens=16)
            done = await log.wait_for("response.done", timeout=120)
            assert done.response.status == "completed"
            assert not log.of_type("error")
        finally:
            await log.aclose()
