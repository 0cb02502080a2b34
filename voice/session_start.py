"""How a session starts: its user, and the configuration given before its connection opened.

No I/O. A configuration may come ahead of the connection: with the client secret the
session is opened with, and (WebRTC) in the ``session`` part of the call's multipart
offer. :class:`SessionChecker` checks one when it is given (minting the secret, answering
the offer) exactly as a ``session.update`` would be checked, so a bad one is a 400 then
rather than an ``error`` event later. :func:`session_start` turns them into what the
transport does:

* the session's constructor arguments: ``character`` and ``user_name`` (so that the
  character greets, which she does in ``start()``) and the session kind. The connection's
  query string (``?character=``, ``?user_name=``, ``?intent=transcription``) wins over
  them, then the call's configuration, then the secret's;
* ``session.update`` messages the transport hands the session right after
  ``session.start()``, before any event of the client's: the secret's, then the call's, so
  the later one wins field by field, as with the Realtime API, where the connection may
  override what the secret set.

Limitation: those updates reach the session after its greeting (if it has a character) has
begun, so the greeting is spoken with her card's voice or the default one, whatever voice
or modalities the configuration asks for; everything after it follows the configuration.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from openai.types.realtime import SessionUpdateEvent

from voice.config import Settings
from voice.interfaces import SessionEngines
from voice.protocol import ProtocolError, new_id, parse_client_event
from voice.session_config import SessionConfig, SessionKind
from voice.session_update import VoiceChoices, apply_update

#: The session kinds a configuration may name (its ``type``).
KINDS: tuple[SessionKind, ...] = ("realtime", "transcription")
#: The ``object`` of each kind's session object, as the Realtime API names it.
OBJECTS = {"realtime": "realtime.session", "transcription": "realtime.transcription_session"}
#: The fields the constructor takes rather than a ``session.update`` (extensions).
CONSTRUCTOR_FIELDS = ("character", "user_name")


@dataclass(frozen=True)
class SessionStart:
    """What a transport needs to open one session."""

    user: str
    character: str | None = None
    user_name: str | None = None
    kind: SessionKind = "realtime"
    #: ``session.update`` messages (JSON text) to apply right after ``session.start()``.
    updates: tuple[str, ...] = ()


class ConflictingStart(ValueError):
    """The query string and a configuration given ahead ask for different session kinds."""


def session_start(
    user: str, query: Mapping[str, str], configs: Sequence[Mapping[str, Any]] = ()
) -> SessionStart:
    """The start of ``user``'s session: ``query`` (the connection's query string) and
    ``configs`` (checked configurations, in the order they apply: the secret's, then the
    call's). Raises :class:`ConflictingStart` when they disagree on the session kind."""
    kind: SessionKind = "transcription" if query.get("intent") == "transcription" else "realtime"
    if configs:
        last = configs[-1].get("type")
        if query.get("intent") == "transcription" and last != "transcription":
            raise ConflictingStart(
                "?intent=transcription asks for a transcription session, but the session "
                f"configuration given ahead is a {last} one"
            )
        kind = "transcription" if last == "transcription" else "realtime"
    chosen: dict[str, str | None] = {name: query.get(name) or None for name in CONSTRUCTOR_FIELDS}
    for name in CONSTRUCTOR_FIELDS:
        for config in reversed(configs):  # the last configuration that names it wins
            if chosen[name] is None and isinstance(config.get(name), str):
                chosen[name] = config[name]
    updates: list[str] = []
    for config in configs:
        rest = {key: value for key, value in config.items() if key not in CONSTRUCTOR_FIELDS}
        if chosen["character"] is None and "character" in config:
            rest["character"] = config["character"]  # an explicit null: no default character
        if set(rest) - {"type"}:
            updates.append(json.dumps({"type": "session.update", "session": rest}))
    return SessionStart(user, chosen["character"], chosen["user_name"], kind, tuple(updates))


class SessionChecker:
    """Checks a session configuration given ahead of its connection, against the voices
    and models of ``engines`` and the character ids ``characters()`` lists."""

    def __init__(
        self,
        settings: Settings,
        engines: SessionEngines,
        characters: Callable[[], Collection[str]],
    ) -> None:
        self._settings = settings
        self._engines = engines  # read when a configuration is checked, not before
        self._characters = characters

    def check(self, session: object, param: str = "session") -> dict[str, Any]:
        """The effective session ``session`` asks for, shaped like the Realtime API's
        session object (``id``, ``object``, ``type``…); :class:`ProtocolError` says what is
        wrong with it (``param`` names where it was given)."""
        if not isinstance(session, dict):
            raise ProtocolError(f"{param} must be a JSON object", param=param)
        kind = session.get("type")
        if kind not in KINDS:
            raise ProtocolError(
                f"{param}.type must be 'realtime' or 'transcription'", param=f"{param}.type"
            )
        try:
            event = parse_client_event(json.dumps({"type": "session.update", "session": session}))
            assert isinstance(event, SessionUpdateEvent)
            voices = self._engines.voices
            config = apply_update(
                SessionConfig.defaults(
                    self._settings, voice=voices.default, character=None, user_name=None,
                    kind=kind,
                ),
                event.session,
                settings=self._settings,
                voices=VoiceChoices(voices.names, voices.aliases),
                multilingual=self._engines.stt.multilingual,
            )  # fmt: skip
        except ProtocolError as error:
            error.message = error.message.replace("'session.update': session.", f"{param}.")
            if error.param is not None and error.param.startswith("session"):
                error.param = param + error.param.removeprefix("session")
            raise
        if config.character is not None and config.character not in self._characters():
            known = ", ".join(sorted(self._characters())) or "none"
            raise ProtocolError(
                f"unknown character {config.character!r}; available: {known}",
                param=f"{param}.character",
            )
        described = config.describe(self._engines.llm.model)
        return {"id": new_id("sess"), "object": OBJECTS[kind],
                **described.model_dump(mode="json", exclude_none=True)}  # fmt: skip
