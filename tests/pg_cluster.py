"""A throwaway PostgreSQL cluster that a test may stop and start: its own data folder,
port and socket folder under /tmp, so nothing else (the CI's main cluster) is touched.

Made with the installed server binaries (``/usr/lib/postgresql/<version>/bin``); as root
they run as the ``postgres`` user (``initdb`` refuses root). One superuser, ``voice``,
with a password (host connections need it: scram-sha-256) and a database ``voice``.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

from voice.llm_server import free_port

PG_ROOT = Path("/usr/lib/postgresql")
USER = "voice"
PASSWORD = "voice-test-password"


def pg_bin_dir() -> Path | None:
    """The newest installed server's binaries, ``None`` without a PostgreSQL server."""
    versions = sorted(
        (path for path in PG_ROOT.glob("*/bin") if (path / "initdb").is_file()),
        key=lambda path: int(path.parent.name) if path.parent.name.isdigit() else 0,
    )
    return versions[-1] if versions else None


def unavailable_reason() -> str | None:
    """Why no cluster can be made here, or ``None`` if one can."""
    if pg_bin_dir() is None:
        return f"PostgreSQL server binaries not found under {PG_ROOT}/*/bin (apt postgresql)"
    if os.geteuid() == 0:
        if shutil.which("runuser") is None:
            return "runuser (util-linux) is needed to run PostgreSQL as postgres"
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "no 'postgres' user to run PostgreSQL as"
    return None


class TempCluster:
    """A PostgreSQL cluster in a fresh temporary folder, on a free loopback port."""

    def __init__(self) -> None:
        bin_dir = pg_bin_dir()
        if bin_dir is None:
            raise RuntimeError(unavailable_reason())
        self.bin = bin_dir
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="voice-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres")
        password_file = self.root / "password"
        password_file.write_text(PASSWORD + "\n")
        if os.geteuid() == 0:
            shutil.chown(password_file, "postgres")
        self._run(
            "initdb",
            "-D",
            str(self.data),
            "-U",
            USER,
            f"--pwfile={password_file}",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "--no-sync",
        )
        password_file.unlink()
        self.start()
        self.create_database(USER)

    @property
    def url(self) -> str:
        return self.url_for(USER)

    def url_for(self, database: str, *, password: str = PASSWORD) -> str:
        return f"postgresql+asyncpg://{USER}:{password}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """A new, empty database (the cluster must be running); its URL."""
        self._run("createdb", "-h", str(self.root), "-p", str(self.port), "-U", USER, name)
        return self.url_for(name)

    def start(self) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._ctl("start", "-o", options, "-l", str(self.log))

    def stop(self) -> None:
        """Fast shutdown: open connections are cut, as in an outage."""
        self._ctl("stop", "-m", "fast")

    def running(self) -> bool:
        done = self._ctl("status", check=False)
        return done.returncode == 0

    def destroy(self) -> None:
        if self.data.exists() and self.running():
            self._ctl("stop", "-m", "immediate", check=False)
        shutil.rmtree(self.root, ignore_errors=True)

    def _ctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[bytes]:
        return self._run("pg_ctl", "-D", str(self.data), "-w", "-t", "60", *args, check=check)

    def _run(self, tool: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[bytes]:
        command = [str(self.bin / tool), *args]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, capture_output=True, cwd="/", timeout=120)
        if check and done.returncode != 0:
            log = self.log.read_text(errors="replace") if self.log.exists() else ""
            raise RuntimeError(
                f"{tool} {' '.join(args)} failed ({done.returncode}):\n"
                f"{done.stdout.decode(errors='replace')}{done.stderr.decode(errors='replace')}"
                f"{log}"
            )
        return done
