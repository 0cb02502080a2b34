"""The settings object is light: loading it pulls in no HTTP framework or model runtime."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("starlette", "uvicorn", "httpx", "aiohttp", "websockets", "aiortc", "onnxruntime")


def test_importing_the_settings_loads_no_http_framework() -> None:
    probe = (
        "import json, sys, voice.config; "
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    loaded = json.loads(subprocess.run(
        [sys.executable, "-c", probe], check=True, capture_output=True, text=True
    ).stdout)  # fmt: skip
    assert "voice" in loaded
    assert not [name for name in HEAVY if name in loaded]
