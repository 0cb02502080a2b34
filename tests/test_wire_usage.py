"""``usage`` in ``response.done``: the counts the model gave, and none sent as ``null``."""

from __future__ import annotations

import json

from openai.types.realtime import ResponseDoneEvent

from voice.llm import StreamReport
from voice.protocol import dump_server_event
from voice.wire_items import response_object, usage_of


def done_usage(report: StreamReport) -> dict[str, object]:
    response = response_object("resp_1", "completed", [], with_audio=True, usage=usage_of(report))
    event = ResponseDoneEvent(type="response.done", event_id="event_1", response=response)
    usage: dict[str, object] = json.loads(dump_server_event(event))["response"]["usage"]
    return usage


def test_an_endpoint_without_usage_gives_output_tokens_and_no_nulls() -> None:
    """The embedded llama.cpp server: streamed tokens counted, the prompt's unknown. The
    Node Agents SDK validates these as numbers: a null ``input_tokens`` made it ignore
    the ``response.done``, and it then held every later ``response.create``."""
    report = StreamReport(chunks=7)
    report.finish()
    assert done_usage(report) == {
        "output_tokens": 7,
        "input_token_details": {"audio_tokens": 0},
        "output_token_details": {"text_tokens": 7, "audio_tokens": 0},
    }


def test_an_endpoint_with_usage_gives_every_count() -> None:
    report = StreamReport(input_tokens=40, cached_tokens=32, output_tokens=9, reported_usage=True)
    assert done_usage(report) == {
        "input_tokens": 40,
        "output_tokens": 9,
        "total_tokens": 49,
        "input_token_details": {"text_tokens": 40, "audio_tokens": 0, "cached_tokens": 32},
        "output_token_details": {"text_tokens": 9, "audio_tokens": 0},
    }
