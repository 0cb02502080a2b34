"""scripts/reliability.py runs against a real server (tiny counts: it works, nothing more).

The full runs (1,000 WebSocket and 200 WebRTC cycles, the 30-minute soak) take far too
long for the test suite; their figures are in BENCHMARKS.md. Whether the resources came
back within tolerance is not asserted here: the shared test server has served other
tests, and a handful of cycles without a warm-up says little.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scripts.reliability import RESOURCES, main
from tests.conftest import ServerProcess

pytestmark = pytest.mark.e2e


def test_cycles_mode_reports_every_resource_before_and_after(
    server: ServerProcess, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report_path = tmp_path / "cycles.json"
    status = main(
        [
            "cycles", "--url", server.http, "--api-key", server.api_key,
            "--websocket", "5", "--webrtc", "2", "--warmup", "0", "--json", str(report_path),
        ]
    )  # fmt: skip
    report = json.loads(report_path.read_text())
    assert status == (0 if report["ok"] else 1)
    assert (report["websocket"], report["webrtc"], report["failures"]) == (5, 2, [])
    assert [check["resource"] for check in report["checks"]] == list(RESOURCES)
    for check in report["checks"]:
        assert isinstance(check["before"], int) and isinstance(check["after"], int), check
        assert check["delta"] == check["after"] - check["before"]
    out = capsys.readouterr().out
    assert "baseline:" in out and "| rss_bytes" in out and "report written to" in out
    health = server.health()
    assert health["active_sessions"] == 0 and health["webrtc_calls"] == 0
