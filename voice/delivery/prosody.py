"""Prosody (how a piece of text is spoken) and the rules mapping stage directions to it.

The rules are data: ``prosody.toml`` next to this module (or an operator's own file) lists
keyword patterns and what they do to the voice. :func:`parse_rules` validates such a
document. Only the two start-up loaders read files: :func:`default_rules` (the packaged
file, read once) and :func:`read_rules`.
"""

from __future__ import annotations

import logging
import re
import tomllib
from dataclasses import dataclass, field, replace
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field, ValidationError

log = logging.getLogger(__name__)

#: Piper's defaults (``piper.config``), used when no voice says otherwise.
DEFAULT_NOISE_SCALE: Final = 0.667
DEFAULT_NOISE_W: Final = 0.8
#: Combined direction multipliers are kept within these bounds.
MIN_FACTOR: Final = 0.5
MAX_FACTOR: Final = 2.0


@dataclass(frozen=True)
class Prosody:
    """Absolute synthesis settings for one piece of speech (Piper's ``SynthesisConfig``).

    ``length_scale`` > 1 is slower; ``noise_scale`` is expressiveness (generator noise);
    ``noise_w`` is rhythm variation (phoneme width noise); ``volume`` scales the samples;
    ``speaker_id`` picks a speaker of a multi-speaker model (``None``: its default).
    """

    length_scale: float = 1.0
    noise_scale: float = DEFAULT_NOISE_SCALE
    noise_w: float = DEFAULT_NOISE_W
    volume: float = 1.0
    speaker_id: int | None = None

    def apply(self, change: ProsodyChange | None) -> Prosody:
        """This prosody with a direction's multipliers applied (``None``: unchanged)."""
        if change is None:
            return self
        return replace(
            self,
            length_scale=self.length_scale * change.length,
            noise_scale=self.noise_scale * change.noise,
            noise_w=self.noise_w * change.noise_w,
            volume=self.volume * change.volume,
        )


@dataclass(frozen=True)
class ProsodyChange:
    """What a stage direction does: multipliers on a voice's prosody, and a pause before."""

    length: float = 1.0
    noise: float = 1.0
    noise_w: float = 1.0
    volume: float = 1.0
    pause_ms: int = 0

    def combine(self, other: ProsodyChange) -> ProsodyChange:
        """Both changes at once ("laughs softly"): factors multiply, the longer pause wins."""

        def clamp(x: float) -> float:
            return min(MAX_FACTOR, max(MIN_FACTOR, x))

        return ProsodyChange(
            length=clamp(self.length * other.length),
            noise=clamp(self.noise * other.noise),
            noise_w=clamp(self.noise_w * other.noise_w),
            volume=clamp(self.volume * other.volume),
            pause_ms=max(self.pause_ms, other.pause_ms),
        )


@dataclass(frozen=True)
class DirectionRule:
    """A named group of keyword patterns and the change they make."""

    name: str
    pattern: re.Pattern[str]
    change: ProsodyChange


@dataclass(frozen=True)
class DeliveryRules:
    """Everything the planner takes from the data file."""

    directions: tuple[DirectionRule, ...] = ()
    ellipsis_ms: int = 300
    dash_ms: int = 150
    #: Single words that are emphasis, not directions, when written as ``*word*``.
    emphasis_words: frozenset[str] = field(default_factory=frozenset)

    def match(self, direction: str) -> ProsodyChange | None:
        """The change for a direction's text (all matching rules combined); ``None`` when
        no rule knows it."""
        found: ProsodyChange | None = None
        for rule in self.directions:
            if rule.pattern.search(direction):
                found = rule.change if found is None else found.combine(rule.change)
        return found


class DeliveryRulesError(ValueError):
    """A rules document that is not valid; the message names the source and the field."""


# --- the file format -------------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _DirectionModel(_Strict):
    name: str = Field(min_length=1)
    patterns: list[str] = Field(min_length=1)
    length: float = Field(default=1.0, ge=MIN_FACTOR, le=MAX_FACTOR)
    noise: float = Field(default=1.0, ge=0.0, le=MAX_FACTOR)
    noise_w: float = Field(default=1.0, ge=0.0, le=MAX_FACTOR)
    volume: float = Field(default=1.0, gt=0.0, le=MAX_FACTOR)
    pause_ms: int = Field(default=0, ge=0, le=3000)


class _PausesModel(_Strict):
    ellipsis_ms: int = Field(default=300, ge=0, le=3000)
    dash_ms: int = Field(default=150, ge=0, le=3000)


class _RulesModel(_Strict):
    emphasis_words: list[str] = []
    pauses: _PausesModel = _PausesModel()
    directions: list[_DirectionModel] = []


def parse_rules(document: str | dict[str, Any], source: str = "prosody rules") -> DeliveryRules:
    """Validate a rules document (TOML text or its parsed table); raises
    :class:`DeliveryRulesError` naming ``source`` and the bad field."""
    try:
        data = tomllib.loads(document) if isinstance(document, str) else document
        model = _RulesModel.model_validate(data)
    except tomllib.TOMLDecodeError as exc:
        raise DeliveryRulesError(f"{source}: not valid TOML: {exc}") from exc
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise DeliveryRulesError(f"{source}: {problems}") from exc
    rules: list[DirectionRule] = []
    for i, item in enumerate(model.directions):
        try:
            pattern = re.compile(r"\b(?:" + "|".join(item.patterns) + ")", re.IGNORECASE)
        except re.error as exc:
            raise DeliveryRulesError(
                f"{source}: directions.{i}.patterns ({item.name}): bad pattern: {exc}"
            ) from exc
        change = ProsodyChange(item.length, item.noise, item.noise_w, item.volume, item.pause_ms)
        rules.append(DirectionRule(item.name, pattern, change))
    return DeliveryRules(
        directions=tuple(rules),
        ellipsis_ms=model.pauses.ellipsis_ms,
        dash_ms=model.pauses.dash_ms,
        emphasis_words=frozenset(word.lower() for word in model.emphasis_words),
    )


@cache
def default_rules() -> DeliveryRules:
    """The rules shipped in ``voice/delivery/prosody.toml`` (read once)."""
    text = resources.files("voice.delivery").joinpath("prosody.toml").read_text("utf-8")
    return parse_rules(text, "voice/delivery/prosody.toml")


def read_rules(path: Path | None) -> DeliveryRules:
    """The rules in ``path`` (an operator's file), or the default ones when ``None``."""
    if path is None:
        return default_rules()
    try:
        text = path.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DeliveryRulesError(f"{path}: cannot read the delivery rules: {exc}") from exc
    return parse_rules(text, str(path))
