"""scripts/bench_end_of_turn.py: boundaries from words, the policies' needed silence, the
ROC and cut-off counts (no models), and one real clip through both judges."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest

from scripts.bench_end_of_turn import (
    BUILT_IN_POLICIES,
    SAMPLE_RATE,
    TAIL_MS,
    Boundary,
    Policy,
    Verdict,
    boundaries,
    boundary_audio,
    cut_off_count,
    ends_sentence,
    judged,
    main,
    parse_policy,
    roc_point,
    simulate,
)
from tests.conftest import SPEECH_DIR
from voice.bench.clips import BenchClip
from voice.bench.pause_clips import Word

TWO_SENTENCES = [
    Word("He", 0.5, 0.7), Word("was", 0.7, 0.9), Word("not", 0.9, 1.1),
    Word("ill.", 1.1, 1.5), Word("Then", 2.0, 2.3), Word("he", 2.3, 2.4),
    Word("left.", 2.4, 2.9),
]  # fmt: skip


def fake_verdict(final: bool, words_done: bool, smart: float) -> Verdict:
    """A judged boundary whose only point is its kind and its two verdicts."""
    boundary = Boundary("fake", 0, 0.0, 1.0, final, False, None, "fake words")
    return Verdict(boundary, "fake guess", words_done, smart)


def test_every_word_ends_a_candidate_turn_that_starts_with_its_sentence() -> None:
    found = boundaries("clip", TWO_SENTENCES)
    assert [b.words for b in found] == [
        "He", "He was", "He was not", "He was not ill.", "Then", "Then he", "Then he left.",
    ]  # fmt: skip
    assert [b.final for b in found] == [False, False, False, True, False, False, True]
    assert [b.start_s for b in found] == [0.5] * 4 + [2.0] * 3
    assert [b.end_s for b in found] == [w.end_s for w in TWO_SENTENCES]
    assert [b.last for b in found] == [False] * 6 + [True]


def test_a_question_or_a_quoted_full_stop_ends_a_sentence() -> None:
    words = [Word("Why?", 0.0, 0.4), Word("'Go.'", 0.5, 0.8), Word("now", 0.9, 1.2)]
    assert [b.final for b in boundaries("clip", words)] == [True, True, False]
    assert [b.start_s for b in boundaries("clip", words)] == [0.0, 0.5, 0.9]


def test_a_titles_or_an_initials_full_stop_ends_no_sentence() -> None:
    assert [ends_sentence(w) for w in ("Mr.", '"Dr.', "J.", "St.")] == [False] * 4
    assert [ends_sentence(w) for w in ("man.", "I?", "Go!", 'it."', "me...")] == [True] * 5
    words = [Word("And", 0.0, 0.2), Word("Mr.", 0.2, 0.5), Word("Dashwood.", 0.5, 1.0)]
    assert [b.final for b in boundaries("clip", words)] == [False, False, True]


def test_no_boundary_inside_a_word_whisper_wrote_in_pieces() -> None:
    words = [Word("an", 0.0, 0.2), Word("ill", 0.2, 0.5), Word("-disposed", 0.5, 1.0)]
    assert [b.words for b in boundaries("clip", words)] == ["an", "an ill -disposed"]


def test_a_boundarys_audio_has_lead_and_tail_and_the_last_runs_to_the_speech_end() -> None:
    first, *_, last = boundaries("clip", TWO_SENTENCES)
    assert first.span_s(speech_end_s=3.2) == pytest.approx((0.3, 0.8))
    assert last.span_s(speech_end_s=3.2) == pytest.approx((1.8, 3.2))
    at_start = boundaries("clip", [Word("Hi.", 0.1, 0.4)])[0]
    assert at_start.span_s(speech_end_s=0.5)[0] == 0.0


def ramp_clip(seconds: float, speech_end_s: float) -> BenchClip:
    """A fake clip whose every sample is its own index, so a slice shows where it came from."""
    samples = np.arange(round(seconds * SAMPLE_RATE), dtype=np.float32)
    return BenchClip("ramp", samples, None, 0, round(speech_end_s * SAMPLE_RATE))


def test_a_boundarys_audio_is_the_clips_or_ends_in_silence_with_the_server_tail() -> None:
    clip = ramp_clip(seconds=3.0, speech_end_s=2.95)
    first, *_, last = boundaries("ramp", TWO_SENTENCES)
    tail = TAIL_MS * SAMPLE_RATE // 1000
    as_cut = boundary_audio(clip, first)
    assert (as_cut[0], as_cut[-1], as_cut.size) == (4800, 12799, 8000)  # 0.3 s to 0.8 s
    heard = boundary_audio(clip, first, server_tail=True)
    assert heard.size == 11200 - 4800 + tail  # to the word's end at 0.7 s, then the tail
    assert heard[-tail - 1] == 11199 and not heard[-tail:].any()
    last_heard = boundary_audio(clip, last, server_tail=True)  # 2.95 s + 0.1 s > 3 s
    assert (last_heard[0], last_heard.size) == (28800, 48800 - 28800)  # from 1.8 s to 3.05 s
    assert last_heard[-801] == len(clip.samples) - 1 and not last_heard[-800:].any()
    assert boundary_audio(clip, last)[-1] == clip.speech_end - 1


def test_a_tail_longer_than_the_gap_hears_the_next_word() -> None:
    he, _, _, ill, *_ = boundaries("clip", TWO_SENTENCES)
    assert he.tail_hears_next  # "was" starts where "He" ends
    assert not ill.tail_hears_next  # 0.5 s of silence before "Then"


def test_words_are_done_unless_the_guess_trails_off_or_ends_no_sentence() -> None:
    boundary = boundaries("clip", TWO_SENTENCES)[0]
    assert judged(boundary, "He was not ill.", 0.9).words_done
    assert not judged(boundary, "He was not", 0.9).words_done
    assert not judged(boundary, "He was not ill and", 0.9).words_done


def test_needed_silence_early_when_both_are_sure_held_when_either_doubts() -> None:
    new_auto = Policy("new auto", 800, 600, 0.5, 240, 0.95)
    assert new_auto.needed_ms(words_done=True, smart=0.97) == 240
    assert new_auto.needed_ms(words_done=True, smart=0.95) == 240
    assert new_auto.needed_ms(words_done=True, smart=0.94) == 800
    assert new_auto.needed_ms(words_done=True, smart=0.49) == 1400
    assert new_auto.needed_ms(words_done=False, smart=0.99) == 1400
    old_auto = Policy("old auto", 500, 600, 0.5)
    assert old_auto.needed_ms(words_done=True, smart=1.0) == 500
    assert old_auto.needed_ms(words_done=True, smart=0.2) == 1100


def test_built_in_policies_are_the_servers_eagerness_settings() -> None:
    by_name = {p.name: p for p in BUILT_IN_POLICIES}
    assert by_name["high"] == Policy("high", 480, 360, 0.5, 240, 0.5)
    assert by_name["low"] == Policy("low", 1440, 1080, 0.5)


def test_a_policy_from_the_command_line() -> None:
    assert parse_policy("800,600,0.5,240,0.9") == Policy("800,600,0.5,240,0.9", 800, 600, 0.5,
                                                         240, 0.9)  # fmt: skip
    no_early = parse_policy("1000,0,0.5,none,-")
    assert (no_early.early_ms, no_early.early_threshold) == (None, None)
    for bad in ("800,600,0.5", "800,600,1.5,none,-", "800,x,0.5,none,-", "-1,0,0.5,-,-"):
        with pytest.raises(argparse.ArgumentTypeError, match=r"800|-1"):
            parse_policy(bad)


def test_cut_off_is_a_pause_longer_than_the_silence_needed() -> None:
    needed = [240, 500, 800, 1400]
    assert [cut_off_count(needed, pause) for pause in (300, 500, 700, 1000)] == [1, 1, 2, 3]


def test_roc_counts_finished_verdicts_over_final_and_mid_boundaries() -> None:
    verdicts = [
        fake_verdict(final=True, words_done=True, smart=0.99),
        fake_verdict(final=True, words_done=True, smart=0.8),
        fake_verdict(final=True, words_done=False, smart=0.99),
        fake_verdict(final=False, words_done=True, smart=0.96),
        fake_verdict(final=False, words_done=False, smart=0.99),
    ]
    point = roc_point(verdicts, 0.9)
    assert (point.true_positives, point.finals, point.false_positives, point.mids) == (1, 3, 1, 2)
    assert point.tpr == pytest.approx(1 / 3)
    assert point.fpr == 0.5
    assert roc_point(verdicts, 0.98).false_positives == 0
    assert roc_point([], 0.5).tpr is None


def test_simulation_sums_up_finals_needed_silence_and_mids_cut_off() -> None:
    verdicts = [
        fake_verdict(final=True, words_done=True, smart=0.99),  # 240
        fake_verdict(final=True, words_done=True, smart=0.7),  # 800
        fake_verdict(final=True, words_done=False, smart=0.7),  # 1400
        fake_verdict(final=False, words_done=True, smart=0.97),  # 240: cut off at 300
        fake_verdict(final=False, words_done=False, smart=0.1),  # 1400
    ]
    result = simulate(Policy("new auto", 800, 600, 0.5, 240, 0.95), verdicts)
    assert (result.finals, result.median_ms, result.p90_ms) == (3, 800, 1400)
    assert result.cut_off == {300: 1, 500: 1, 700: 1, 1000: 1}
    assert result.share(300) == 0.5
    empty = simulate(Policy("old auto", 500, 600, 0.5), [])
    assert (empty.median_ms, empty.share(300)) == (None, None)


def test_a_missing_clips_folder_exits_2_with_its_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--clips", str(tmp_path / "absent")]) == 2
    assert f"clips folder not found: {tmp_path / 'absent'}" in capsys.readouterr().err


def test_one_real_clip_through_both_judges(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if not (SPEECH_DIR / "manifest.tsv").is_file():
        pytest.skip(f"real speech clips not found: {SPEECH_DIR / 'manifest.tsv'} is missing")
    report_path = tmp_path / "eot.json"
    assert main(["--clips", str(SPEECH_DIR), "--limit", "1", "--json", str(report_path)]) == 0
    captured = capsys.readouterr()
    assert "clip 1/1" in captured.err
    assert "words done and smart >=" in captured.out and "TPR (final)" in captured.out
    for name in ("old auto", "new auto", "high", "low"):
        assert f"\n{name} " in captured.out
    report = json.loads(report_path.read_text())
    assert report["boundaries"] and len(report["roc"]) == 5 and len(report["policies"]) == 4
    assert any(b["final"] for b in report["boundaries"])
    assert all(0.0 <= b["smart"] <= 1.0 for b in report["boundaries"])
