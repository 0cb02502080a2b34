"""Cold start of `voice serve`: process start to its "ready" line, over a few runs.

.venv/bin/python scripts/cold_start.py --runs 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--port", type=int, default=8830)
    args = parser.parse_args()
    times = []
    for _ in range(args.runs):
        env = {**os.environ, "VOICE_DATA_DIR": tempfile.mkdtemp()}
        started = time.perf_counter()
        process = subprocess.Popen(
            [str(REPO / ".venv/bin/voice"), "serve", "--port", str(args.port)],
            stderr=subprocess.PIPE, text=True, env=env, cwd=REPO,
        )  # fmt: skip
        assert process.stderr is not None
        for line in process.stderr:
            if "ready in" in line:
                times.append(time.perf_counter() - started)
                break
        process.terminate()
        process.wait()
    if not times:
        sys.exit("voice serve never became ready")
    print(
        f"cold start (process start -> ready): median {statistics.median(times):.2f} s, "
        f"max {max(times):.2f} s, runs: {[round(t, 2) for t in times]}"
    )


if __name__ == "__main__":
    main()
