"""Serving over TLS (``wss://``, ``https://``): the certificate and key, checked at start.

:func:`tls_files` is called before the models load, so a wrong path or a key that does not
match its certificate stops ``voice serve`` at once with a message naming the file and the
setting, not after a minute of loading with a traceback from deep inside uvicorn.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

_CERT = "certificate (--tls-cert, VOICE_TLS_CERT_FILE)"
_KEY = "key (--tls-key, VOICE_TLS_KEY_FILE)"


class TlsConfigError(ValueError):
    """The TLS settings are incomplete or name files that cannot be used."""


@dataclass(frozen=True)
class TlsFiles:
    """A PEM certificate chain and its private key, loaded together once at start."""

    cert: Path
    key: Path


def tls_files(cert: Path | None, key: Path | None) -> TlsFiles | None:
    """The TLS files to serve with, or ``None`` for plain ``ws://``/``http://``.

    Both or neither must be set; both must be readable PEM files and the key must belong to
    the certificate. Raises :class:`TlsConfigError` with what to fix.
    """
    if cert is None and key is None:
        return None
    if cert is None or key is None:
        given, missing = (_CERT, _KEY) if key is None else (_KEY, _CERT)
        raise TlsConfigError(
            f"the TLS {given} is set but not the {missing}: serving wss:// and https:// "
            "needs both, plain ws:// and http:// neither"
        )
    for path, what in ((cert, _CERT), (key, _KEY)):
        if not path.is_file():
            raise TlsConfigError(f"the TLS {what} names a missing file: {path}")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(certfile=cert, keyfile=key)
    except ssl.SSLError as exc:
        raise TlsConfigError(
            f"cannot serve TLS with certificate {cert} and key {key}: {exc.reason or exc} "
            "(both must be PEM files, and the key must be the certificate's own)"
        ) from exc
    except OSError as exc:
        raise TlsConfigError(f"cannot read the TLS files {cert}, {key}: {exc}") from exc
    return TlsFiles(cert, key)
