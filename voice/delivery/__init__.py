"""Expressive delivery: turn a reply's text into a speech plan, with no I/O.

``plan_speech(chunk, state)`` gives the :class:`Speak` and :class:`Pause` segments for one
chunk; ``plan_transcript(plan)`` the words as the transcript shows them;
``voice.tts.synthesize_plan`` speaks a plan.
"""

from voice.delivery.normalize import speakable, strip_markup
from voice.delivery.plan import (
    DeliveryState,
    Pause,
    Segment,
    Speak,
    plan_speech,
    plan_transcript,
    spoken_text,
)
from voice.delivery.prosody import (
    DeliveryRules,
    DeliveryRulesError,
    Prosody,
    ProsodyChange,
    default_rules,
    parse_rules,
    read_rules,
)

__all__ = [
    "DeliveryRules",
    "DeliveryRulesError",
    "DeliveryState",
    "Pause",
    "Prosody",
    "ProsodyChange",
    "Segment",
    "Speak",
    "default_rules",
    "parse_rules",
    "plan_speech",
    "plan_transcript",
    "read_rules",
    "speakable",
    "spoken_text",
    "strip_markup",
]
