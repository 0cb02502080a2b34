"""The endpointer on scripted probability timelines (32 ms windows, no audio, no clock)."""

from voice.endpointing import Endpointer, EndpointingConfig, SpeechStarted, SpeechStopped

WINDOW = 32


def run(probabilities: list[float], **config: float) -> list[tuple[int, object]]:
    """Feed probabilities window by window; return (window index, event) pairs."""
    endpointer = Endpointer(EndpointingConfig(**config))  # type: ignore[arg-type]
    events = []
    for index, probability in enumerate(probabilities):
        event = endpointer.process(probability, index * WINDOW, WINDOW)
        if event is not None:
            events.append((index, event))
    return events


def test_speech_starts_after_min_speech_and_reports_onset() -> None:
    events = run([0.0] * 5 + [0.9] * 10 + [0.0] * 30, min_speech_ms=96, silence_ms=500)
    index, started = events[0]
    assert started == SpeechStarted(audio_start_ms=5 * WINDOW)
    assert index == 7  # three windows (96 ms) of speech are needed


def test_speech_stops_after_silence_and_reports_end_of_last_speech_window() -> None:
    events = run([0.9] * 10 + [0.0] * 30, silence_ms=480)
    assert [type(event) for _, event in events] == [SpeechStarted, SpeechStopped]
    index, stopped = events[1]
    assert stopped == SpeechStopped(audio_end_ms=10 * WINDOW)
    assert index == 10 + 480 // WINDOW - 1


def test_short_blip_is_not_speech() -> None:
    assert run([0.0, 0.9, 0.9, 0.0, 0.0, 0.9, 0.0] + [0.0] * 20, min_speech_ms=96) == []


def test_pause_shorter_than_silence_keeps_the_turn_open() -> None:
    timeline = [0.9] * 10 + [0.0] * 10 + [0.9] * 10 + [0.0] * 20
    events = run(timeline, silence_ms=500)
    assert [type(event) for _, event in events] == [SpeechStarted, SpeechStopped]
    assert events[1][1] == SpeechStopped(audio_end_ms=30 * WINDOW)


def test_hysteresis_keeps_wavering_speech_in_the_turn() -> None:
    # 0.4 is below the start threshold but above threshold - hysteresis: still speech.
    timeline = [0.9] * 5 + [0.4] * 30 + [0.0] * 20
    events = run(timeline, threshold=0.5, silence_ms=500)
    assert events[1][1] == SpeechStopped(audio_end_ms=35 * WINDOW)


def test_two_turns_and_reset() -> None:
    timeline = ([0.9] * 5 + [0.0] * 20) * 2
    events = run(timeline, silence_ms=320)
    kinds = [type(event) for _, event in events]
    assert kinds == [SpeechStarted, SpeechStopped, SpeechStarted, SpeechStopped]
    assert events[2][1] == SpeechStarted(audio_start_ms=25 * WINDOW)

    endpointer = Endpointer(EndpointingConfig())
    for index in range(5):
        endpointer.process(0.9, index * WINDOW, WINDOW)
    assert endpointer.in_speech
    endpointer.reset()
    assert not endpointer.in_speech
