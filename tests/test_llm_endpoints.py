"""The embedded LLM child is owned by the server; a configured endpoint replaces it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conftest import ServerProcess, start_server
from tests.realtime_helpers import realtime, say_text

pytestmark = pytest.mark.e2e


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split()[2] == "Z")


async def test_external_endpoint_is_used_and_nothing_is_started(
    server: ServerProcess, tmp_path: Path
) -> None:
    # The shared server's embedded llama.cpp server stands in for "some other endpoint".
    upstream = server.health()["models"]["llm"]["base_url"]
    external = start_server(
        tmp_path, VOICE_LLM_BASE_URL=upstream, VOICE_LLM_MODEL="smollm2", VOICE_LLM_API_KEY="k"
    )
    try:
        health = external.health()
        assert health["llm_server_pid"] is None
        assert health["models"]["llm"]["base_url"] == upstream
        assert "starting embedded" not in external.log()
        async with realtime(external.ws_base, external.api_key) as log:
            await say_text(log, "Say hello to Sam.", output_modalities=["text"])
            done = await log.wait_for("response.done", timeout=60)
            assert done.response.status == "completed"
            text = done.response.output[0].content[0].text
            assert text.strip()
            assert "".join(e.delta for e in log.of_type("response.output_text.delta")) == text
    finally:
        assert external.stop() == 0


def test_embedded_llm_server_stops_with_the_server(tmp_path: Path) -> None:
    own = start_server(tmp_path)
    try:
        pid = own.health()["llm_server_pid"]
        assert isinstance(pid, int) and alive(pid)
    finally:
        returncode = own.stop()
    assert returncode == 0
    assert not alive(pid), "the embedded LLM server outlived voice serve"
