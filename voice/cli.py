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
from voice.server import HARD_LIMIT_FACTOR, create_app
from voice.services import Services


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="voice", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="start the voice companion server")
    serve.add_argument("--host", help="bind address (default: settings, 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default: settings, 8000; 0 = any free)")
    serve.add_argument("--config", help="TOML config file (same as VOICE_CONFIG_FILE)")
    serve.add_argument("--log-level", default="info", choices=["debug", "info", "warning"])
    bench_command.configure(commands.add_parser("bench", help="measure a running server"))
    return parser


class _Server(uvicorn.Server):
    """uvicorn, minus its signal handling: ours must run the cleanup before the process exits.

    uvicorn re-raises SIGTERM/SIGINT once it has shut down, which would kill the process
    before the embedded LLM server is stopped.
    """

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
        if self.should_exit:  # a second Ctrl-C: do not wait for open connections
            self.force_exit = True
        self.should_exit = True


async def serve(settings: Settings) -> None:
    """Load the models, then serve until interrupted; the embedded LLM stops with us."""
    started = time.perf_counter()
    sock = socket.socket(socket.AF_INET6 if ":" in settings.host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((settings.host, settings.port))  # fail early if the port is taken
    sock.listen(2048)  # from "ready" on, connections wait in the backlog, never refused
    print("loading models", file=sys.stderr, flush=True)
    engines = await load_engines(settings)
    services: Services | None = None
    try:
        services = await Services.start(settings, engines)
        app = create_app(settings, engines, services)
        config = uvicorn.Config(
            app,
            log_level="warning",
            ws_max_size=settings.max_message_bytes * HARD_LIMIT_FACTOR,
            ws_ping_interval=20,
            ws_ping_timeout=20,
        )
        server = _Server(config)
        host, port = sock.getsockname()[:2]
        shown_host = f"[{host}]" if ":" in host else host
        print(
            f"ready in {time.perf_counter() - started:.1f} s: "
            f"ws://{shown_host}:{port}/v1/realtime  (health: http://{shown_host}:{port}/health)",
            file=sys.stderr,
            flush=True,
        )
        print(
            f"web client: http://{shown_host}:{port}/   characters: "
            + (", ".join(entry.id for entry in services.library.list()) or "none"),
            file=sys.stderr,
            flush=True,
        )
        if services.auth.local_key:
            print(
                f"API key of the local user: {services.auth.local_key} "
                f"(in {settings.data_dir / 'local-api-key'}; "
                + ("clients on this machine may omit it)" if services.auth.trust_loopback else ")"),
                file=sys.stderr,
                flush=True,
            )
        await server.serve(sockets=[sock])
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
            for key, value in (("host", args.host), ("port", args.port))
            if value is not None
        }
        settings = load_settings(**overrides)
        logging.basicConfig(
            level=args.log_level.upper(),
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        )
        # The HTTP client logs every request, aioice every ICE check (with addresses).
        for noisy in ("httpx", "httpx2", "httpcore", "httpcore2", "aioice"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
        try:
            asyncio.run(serve(settings))
        except KeyboardInterrupt:
            pass
