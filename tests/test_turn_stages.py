"""scripts/turn_stages.py: stage times of prepared replies, read off a server's debug log."""

from __future__ import annotations

from pathlib import Path

import pytest

from scripts.turn_stages import main, prepared_replies, report

LOG = """\
2026-12-06 13:05:09,956 DEBUG voice.user_turns: guess 1 of 7200 ms of speech
2026-12-06 13:05:10,065 DEBUG voice.user_turns: end-of-turn model: 0.99 complete (guess 1)
2026-12-06 13:05:10,138 DEBUG voice.user_turns: guess 1 transcribed in 0.182 s
2026-12-06 13:05:10,139 DEBUG voice.floor: reply prepared (planned in 0.000 s)
2026-12-06 13:05:10,157 DEBUG openai._base_client: HTTP Response: POST 200
2026-12-06 13:05:10,460 DEBUG piper.voice: text=No, no., phonemes=[]
2026-12-06 13:05:11,157 DEBUG piper.voice: text=Second chunk., phonemes=[]
2026-12-06 13:05:20,000 DEBUG voice.user_turns: guess 2 of 900 ms of speech
2026-12-06 13:05:20,100 DEBUG voice.user_turns: user turn item_1 transcribed in 0.100 s
2026-12-06 13:05:20,200 DEBUG openai._base_client: HTTP Response: POST 200
2026-12-06 13:05:20,300 DEBUG piper.voice: text=Not prepared., phonemes=[]
2026-12-06 13:05:30,000 DEBUG voice.user_turns: guess 3 of 2000 ms of speech
2026-12-06 13:05:30,100 DEBUG voice.user_turns: guess 3 transcribed in 0.100 s
2026-12-06 13:05:30,101 DEBUG voice.floor: reply prepared (planned in 0.000 s)
2026-12-06 13:05:30,110 DEBUG openai._base_client: HTTP Response: POST 200
2026-12-06 13:05:30,310 DEBUG piper.voice: text=Yes., phonemes=[]
"""


def test_only_guesses_that_reached_tts_with_a_prepared_reply_count() -> None:
    replies = prepared_replies(LOG.splitlines())
    assert len(replies) == 2  # guess 2 never got a transcript of its own nor a prepared reply
    first = replies[0]
    assert round((first["transcribed"] - first["guess"]) * 1000) == 182
    assert round((first["tts"] - first["llm_open"]) * 1000) == 303


def test_report_gives_medians_per_stage() -> None:
    lines = report(prepared_replies(LOG.splitlines()))
    assert lines[0] == "prepared replies: 2"
    assert "LLM stream open -> first chunk to TTS" in lines[3]
    assert "median  252 ms (min 200, max 303)" in lines[3]


def test_a_log_without_debug_lines_is_said_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "server.log"
    log.write_text("2026-12-06 13:05:09,956 INFO voice.server: session s connected\n")
    assert main([str(log)]) == 1
    assert "--log-level debug" in capsys.readouterr().out
    assert main([str(tmp_path / "missing.log")]) == 2
