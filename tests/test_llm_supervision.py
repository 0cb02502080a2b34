"""The embedded llama.cpp children are restarted when they die, and never once stopped."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from voice.llm import ChatLLM
from voice.llm_pool import EmbeddedLlamaPool
from voice.llm_server import EmbeddedLlamaServer, RestartBackoff, default_gguf_path, describe_exit

# --- the decisions, without processes ----------------------------------------------------


def test_backoff_doubles_up_to_its_cap() -> None:
    backoff = RestartBackoff(initial_s=0.5, max_s=4.0, stable_s=60.0)
    assert [backoff.delay(1.0) for _ in range(6)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]


def test_backoff_starts_over_after_a_child_stayed_up() -> None:
    backoff = RestartBackoff(initial_s=0.5, max_s=30.0, stable_s=60.0)
    assert [backoff.delay(0.0) for _ in range(3)] == [0.5, 1.0, 2.0]
    assert backoff.delay(60.0) == 0.5
    assert backoff.delay(59.0) == 1.0


def test_exits_are_described_in_words() -> None:
    assert describe_exit(-signal.SIGKILL) == "killed by SIGKILL"
    assert describe_exit(-signal.SIGSEGV) == "killed by SIGSEGV"
    assert describe_exit(1) == "exited with code 1"
    assert describe_exit(0) == "exited with code 0"


# --- a real llama.cpp child ---------------------------------------------------------------


def llama_children() -> list[int]:
    """Live (not zombie) llama.cpp children (``voice.llm_child``) of this test process."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == os.getpid() and fields[0] != "Z" and b"voice.llm_child" in cmdline:
            found.append(int(entry.name))
    return found


async def until(condition: Callable[[], bool], timeout: float = 120.0) -> None:
    """Poll what a child process and the supervisor do (nothing signals it), bounded."""
    async with asyncio.timeout(timeout):
        while not condition():  # noqa: ASYNC110
            await asyncio.sleep(0.01)


@pytest.fixture
async def child(tmp_path: Path) -> AsyncIterator[EmbeddedLlamaServer]:
    server = EmbeddedLlamaServer(default_gguf_path(), log_path=tmp_path / "llm-server.log")
    await server.start()
    yield server
    await server.stop()
    assert llama_children() == []


@pytest.mark.e2e
async def test_a_killed_child_is_restarted_on_the_same_port(
    child: EmbeddedLlamaServer, tmp_path: Path
) -> None:
    warmed = 0

    async def warm() -> None:
        nonlocal warmed
        warmed += 1

    restarts_counted = 0

    def count() -> None:
        nonlocal restarts_counted
        restarts_counted += 1

    child.on_restart = count
    child.supervise(warm)
    first, url = child.pid, child.base_url
    assert first is not None and child.status()["state"] == "running"
    os.kill(first, signal.SIGKILL)

    await until(lambda: child.restarts == 1 and child.state == "running" and warmed == 1)
    assert child.base_url == url
    assert child.pid not in (None, first)
    assert child.status() == {
        "pid": child.pid,
        "state": "running",
        "restarts": 1,
        "last_exit": "killed by SIGKILL",
    }
    assert restarts_counted == 1
    assert llama_children() == [child.pid]
    llm = ChatLLM(url, "smollm2", max_tokens=10)
    try:
        assert (await llm.complete([{"role": "user", "content": "Hi!"}], max_tokens=5)).strip()
    finally:
        await llm.aclose()
    # The new child appended to the log: the dead one's output is still there.
    assert (tmp_path / "llm-server.log").read_text().count("Uvicorn running") == 2


@pytest.mark.e2e
async def test_stop_while_waiting_to_restart_starts_nothing(child: EmbeddedLlamaServer) -> None:
    child.backoff = RestartBackoff(initial_s=3600.0)
    child.supervise()
    first = child.pid
    assert first is not None
    os.kill(first, signal.SIGKILL)
    await until(lambda: child.state == "restarting", timeout=10)
    async with asyncio.timeout(10):
        await child.stop()
    assert child.status() == {
        "pid": None,
        "state": "stopped",
        "restarts": 0,
        "last_exit": "killed by SIGKILL",
    }
    assert llama_children() == []


@pytest.mark.e2e
async def test_stop_while_a_new_child_loads_stops_it(child: EmbeddedLlamaServer) -> None:
    child.backoff = RestartBackoff(initial_s=0.0)
    child.supervise()
    first = child.pid
    assert first is not None
    os.kill(first, signal.SIGKILL)
    await until(lambda: child.pid not in (None, first), timeout=30)
    loading = child.pid
    assert loading is not None and child.state == "restarting"
    os.kill(loading, signal.SIGSTOP)  # it never gets ready, and ignores SIGTERM
    async with asyncio.timeout(30):
        await child.stop()
    assert child.state == "stopped" and child.restarts == 0
    assert llama_children() == []


@pytest.mark.e2e
async def test_a_restart_that_fails_is_tried_again(child: EmbeddedLlamaServer) -> None:
    child.backoff = RestartBackoff(initial_s=0.2, max_s=0.4)
    child.supervise()
    first = child.pid
    assert first is not None
    squatter = socket.socket()
    os.kill(first, signal.SIGKILL)
    try:
        async with asyncio.timeout(10):  # the port is free once the dead child is gone
            while True:
                try:
                    squatter.bind(("127.0.0.1", child.port))
                    break
                except OSError:
                    await asyncio.sleep(0.01)
        squatter.listen()
        # The next child cannot listen on its port and exits: the supervisor tries again.
        await until(lambda: (child.last_exit or "").startswith("exited with code"), timeout=60)
        assert child.state == "restarting" and child.restarts == 0
    finally:
        squatter.close()
    await until(lambda: child.state == "running", timeout=120)
    assert child.restarts == 1 and child.pid not in (None, first)


# --- a pool of children -------------------------------------------------------------------


@pytest.mark.e2e
async def test_a_pool_answers_two_requests_at_once_and_restarts_a_dead_child(
    tmp_path: Path,
) -> None:
    pool = EmbeddedLlamaPool(default_gguf_path(), processes=2, threads=1, log_dir=tmp_path)
    await pool.start()
    llm = ChatLLM(pool.base_urls, "smollm2", max_tokens=8)
    try:
        assert len(set(pool.base_urls)) == 2 and sorted(llama_children()) == sorted(pool.pids)
        story = [{"role": "user", "content": "Tell me a story."}]

        async def reply() -> str:
            return "".join([str(piece) async for piece in llm.stream(story)])

        both = await asyncio.gather(reply(), reply())
        assert all(text.strip() for text in both)
        # Two requests at once went to the two copies, one each.
        assert [e["served"] for e in llm.endpoints()] == [1, 1]

        warmed: list[str] = []

        async def warm(base_url: str) -> None:
            warmed.append(base_url)

        pool.supervise(warm)
        second = pool.children[1]
        dead = second.pid
        assert dead is not None
        os.kill(dead, signal.SIGKILL)
        await until(lambda: pool.restarts == 1 and pool.state == "running" and warmed)
        assert warmed == [second.base_url]
        status = pool.status()
        assert status["last_exit"] == "killed by SIGKILL" and status["pid"] == pool.children[0].pid
        assert [p["restarts"] for p in status["processes"]] == [0, 1]
        assert (tmp_path / "llm-server-2.log").read_text().count("Uvicorn running") == 2
        assert (tmp_path / "llm-server-1.log").read_text().count("Uvicorn running") == 1
    finally:
        await llm.aclose()
        await pool.stop()
    assert pool.state == "stopped" and llama_children() == []


@pytest.mark.e2e
async def test_a_pool_whose_child_cannot_start_stops_the_others(tmp_path: Path) -> None:
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"not a model")
    pool = EmbeddedLlamaPool(broken, processes=2, threads=1, log_dir=tmp_path)
    with pytest.raises(RuntimeError, match="embedded LLM server exited"):
        await pool.start(timeout_s=60)
    assert pool.state == "stopped" and llama_children() == []
