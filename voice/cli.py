"""The ``voice`` command."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Iterator, Sequence

import uvicorn

from voice.bench import command as bench_command
from voice.config import Settings, load_settings
from voice.engines import load_engines
from voice.keyfiles import LOCAL_KEY_FILE
from voice.memory.database import DatabaseUnavailableError
from voice.server import HARD_LIMIT_FACTOR, create_app
from voice.services import Services, open_memory_store
from voice.shutdown import GracefulShutdown
from voice.tasks import cancel_and_wait
from voice.tls import TlsConfigError, TlsFiles, tls_files
from voice.turn_model import TurnModelError

#: uvicorn's own shutdown (after the drain) waits at most this for open connections.
UVICORN_SHUTDOWN_TIMEOUT_S = 5


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="voice", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="start the voice companion server")
    serve.add_argument("--host", help="bind address (default: settings, 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default: settings, 8000; 0 = any free)")
    serve.add_argument("--tls-cert", help="PEM certificate: serve wss:// and https://")
    serve.add_argument("--tls-key", help="PEM private key of --tls-cert")
    serve.add_argument("--config", help="TOML config file (same as VOICE_CONFIG_FILE)")
    serve.add_argument("--log-level", default="info", choices=["debug", "info", "warning"])
    bench_command.configure(commands.add_parser("bench", help="measure a running server"))
    return parser


class _Server(uvicorn.Server):
    """uvicorn, with our own signal handling: a graceful drain, then uvicorn's shutdown.

    uvicorn re-raises SIGTERM/SIGINT once it has shut down, which would kill the process
    before the embedded LLM server is stopped; and its shutdown closes every WebSocket at
    once (1012). So the first signal stops accepting connections and drains the calls
    (:class:`voice.shutdown.GracefulShutdown`); only then does uvicorn shut down. A second
    signal skips the drain; a third stops waiting for open connections.
    """

    def __init__(self, config: uvicorn.Config, shutdown: GracefulShutdown) -> None:
        super().__init__(config)
        self._shutdown = shutdown
        self._signals = 0
        self._draining: asyncio.Task[None] | None = None

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._request_exit)
        try:
            yield
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)

    def _request_exit(self) -> None:
        self._signals += 1
        if self._signals == 1:
            self._draining = asyncio.get_running_loop().create_task(self._drain(), name="drain")
        elif self._signals == 2:
            print("second signal: ending the calls now", file=sys.stderr, flush=True)
            self._shutdown.skip()
        else:  # do not wait for open connections either
            self.force_exit = self.should_exit = True

    async def _drain(self) -> None:
        for server in getattr(self, "servers", []):
            server.close()  # stop accepting at once; open connections go on
        try:
            await self._shutdown.run()
        finally:
            self.should_exit = True

    async def aclose(self) -> None:
        """Stop the drain if uvicorn was told to exit without it (a third signal)."""
        await cancel_and_wait(self._draining)


async def serve(settings: Settings, tls: TlsFiles | None = None) -> None:
    """Load the models, then serve until interrupted; the embedded LLM stops with us."""
    started = time.perf_counter()
    ws_scheme, http_scheme = ("wss", "https") if tls else ("ws", "http")
    sock = socket.socket(socket.AF_INET6 if ":" in settings.host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((settings.host, settings.port))  # fail early if the port is taken
    sock.listen(2048)  # from "ready" on, connections wait in the backlog, never refused
    store = await open_memory_store(settings)  # before the models: an unreachable one fails fast
    try:
        print("loading models", file=sys.stderr, flush=True)
        engines = await load_engines(settings)
    except BaseException:
        await store.aclose()
        raise
    services: Services | None = None
    try:
        services = await Services.start(settings, engines, store)
        app = create_app(settings, engines, services)
        config = uvicorn.Config(
            app,
            log_level="warning",
            ws_max_size=settings.max_message_bytes * HARD_LIMIT_FACTOR,
            ws_ping_interval=20,
            ws_ping_timeout=20,
            ssl_certfile=tls.cert if tls else None,
            ssl_keyfile=tls.key if tls else None,
            # After the drain, connections still open (a client that stopped reading) do
            # not hold the exit up for longer than this.
            timeout_graceful_shutdown=UVICORN_SHUTDOWN_TIMEOUT_S,
        )
        shutdown = app.state.shutdown
        assert isinstance(shutdown, GracefulShutdown)
        server = _Server(config, shutdown)
        host, port = sock.getsockname()[:2]
        shown_host = f"[{host}]" if ":" in host else host
        print(
            f"ready in {time.perf_counter() - started:.1f} s: "
            f"{ws_scheme}://{shown_host}:{port}/v1/realtime  "
            f"(health: {http_scheme}://{shown_host}:{port}/health)",
            file=sys.stderr,
            flush=True,
        )
        print(
            f"web client: {http_scheme}://{shown_host}:{port}/   characters: "
            + (", ".join(entry.id for entry in services.library.list()) or "none"),
            file=sys.stderr,
            flush=True,
        )
        if services.auth.local_key:
            # The key itself is not printed: what a server prints ends up in logs.
            print(
                f"API key of the local user: in {settings.data_dir / LOCAL_KEY_FILE}"
                + (
                    " (clients on this machine may omit it)" if services.auth.trust_loopback else ""
                ),
                file=sys.stderr,
                flush=True,
            )
        try:
            await server.serve(sockets=[sock])
        finally:
            await server.aclose()
    finally:
        if services is not None:
            await services.aclose()
        await engines.aclose()


def main(argv: Sequence[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    if args.command == "bench":
        sys.exit(bench_command.run(args))
    if args.command == "serve":
        if args.config:
            os.environ["VOICE_CONFIG_FILE"] = args.config
        overrides = {
            key: value
            for key, value in (
                ("host", args.host),
                ("port", args.port),
                ("tls_cert_file", args.tls_cert),
                ("tls_key_file", args.tls_key),
            )
            if value is not None
        }
        settings = load_settings(**overrides)
        try:
            tls = tls_files(settings.tls_cert_file, settings.tls_key_file)
        except TlsConfigError as exc:
            print(f"voice serve: {exc}", file=sys.stderr)
            sys.exit(2)
        logging.basicConfig(
            level=args.log_level.upper(),
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        )
        # The HTTP client logs every request, aioice every ICE check (with addresses).
        for noisy in ("httpx", "httpx2", "httpcore", "httpcore2", "aioice"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
        try:
            asyncio.run(serve(settings, tls))
        except KeyboardInterrupt:
            pass
        except (DatabaseUnavailableError, TurnModelError) as exc:
            print(f"voice serve: {exc}", file=sys.stderr)
            sys.exit(1)
