"""A self-signed certificate made the way the README tells a LAN user to make one."""

from __future__ import annotations

import ssl
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import ServerProcess


@dataclass(frozen=True)
class SelfSigned:
    cert: Path
    key: Path

    def client_context(self) -> ssl.SSLContext:
        """A client context that trusts this certificate only (as a user who imported it)."""
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(self.cert))
        return context


def make_self_signed(
    folder: Path, *, names: str = "DNS:localhost,IP:127.0.0.1,IP:::1"
) -> SelfSigned:
    """``openssl req -x509`` as in the README's LAN example, with ``names`` as the SANs."""
    folder.mkdir(parents=True, exist_ok=True)
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-sha256", "-days", "825", "-nodes", "-keyout", str(key), "-out", str(cert),
            "-subj", "/CN=voice", "-addext", f"subjectAltName={names}",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return SelfSigned(cert, key)


@dataclass
class TlsServer:
    """A ``voice serve --tls-cert --tls-key`` and the certificate a client must trust."""

    process: ServerProcess
    cert: SelfSigned

    @property
    def port(self) -> int:
        return self.process.port

    @property
    def https(self) -> str:
        return f"https://localhost:{self.port}"

    @property
    def wss_base(self) -> str:
        return f"wss://localhost:{self.port}/v1"

    @property
    def api_key(self) -> str:
        return self.process.api_key
