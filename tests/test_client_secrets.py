"""Client secrets without a server: the table (expiry on an injected clock, bounds), what the
authenticator accepts where, how a session starts from a configuration given ahead, and
how such a configuration is checked."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from tests.fakes import FakeEngines, FakeLLM
from tests.test_auth import FakeClock, connection
from voice.auth import SECRET_NOT_ACCEPTED, UNAUTHORIZED, Authenticator, Caller
from voice.client_secrets import (
    DEFAULT_TTL_S,
    SECRET_PREFIX,
    ClientSecrets,
    Expired,
    Grant,
    TooManySecrets,
)
from voice.config import Settings
from voice.origin import Refusal
from voice.protocol import ProtocolError
from voice.session_start import ConflictingStart, SessionChecker, session_start
from voice.throttle import FailureThrottle

KEYS = {"alice-key": "alice", "bob-key": "bob"}


# --- the table -----------------------------------------------------------------------------


def test_a_secret_is_random_bound_to_its_user_and_kept_as_a_digest_only() -> None:
    clock = FakeClock()
    table = ClientSecrets(clock=clock)
    config = {"type": "realtime", "instructions": "Be brief."}
    secret, grant = table.mint("alice", session=config)
    other, _ = table.mint("alice")
    assert secret.startswith(SECRET_PREFIX) and len(secret) > 40 and secret != other
    assert grant == Grant("alice", config, created_at=1000.0, expires_at=1000.0 + DEFAULT_TTL_S)
    assert table.lookup(secret) == grant
    assert table.lookup(secret + "x") is None and table.lookup("alice-key") is None
    assert table.lookup(secret[len(SECRET_PREFIX) :]) is None  # the prefix is part of it
    # Nothing in the table is the secret itself, or contains it.
    assert secret not in repr(vars(table)) and secret.encode() not in repr(vars(table)).encode()


def test_secrets_expire_on_the_injected_clock_and_say_so() -> None:
    clock = FakeClock()
    table = ClientSecrets(clock=clock)
    short, _ = table.mint("alice", ttl_s=10)
    long, _ = table.mint("alice", ttl_s=7200)
    clock.now += 9.999
    assert isinstance(table.lookup(short), Grant)
    clock.now += 0.001  # exactly expires_at: no longer valid
    assert table.lookup(short) == Expired(1010.0)
    assert table.lookup(short) == Expired(1010.0)  # and stays so
    assert isinstance(table.lookup(long), Grant)
    assert len(table) == 1 and table.live_for("alice") == 1
    clock.now += 7200
    table.sweep()
    assert len(table) == 0 and table.live_for("alice") == 0
    assert table.lookup(long) == Expired(1000.0 + 7200)
    for bad in (9, 7201, 0, -5):
        with pytest.raises(ValueError, match="10 to 7200"):
            table.mint("alice", ttl_s=bad)


def test_live_secrets_are_bounded_per_user_and_in_all_and_never_evicted() -> None:
    clock = FakeClock()
    table = ClientSecrets(max_per_user=3, max_total=5, clock=clock)
    alice = [table.mint("alice", ttl_s=60 + n)[0] for n in range(3)]
    with pytest.raises(TooManySecrets) as full:
        table.mint("alice")
    assert full.value.retry_after == 60  # the oldest of hers expires then
    assert "3 live client secrets" in full.value.message
    bob = [table.mint("bob", ttl_s=600)[0] for _ in range(2)]
    with pytest.raises(TooManySecrets) as server_full:
        table.mint("carol")
    assert "the server holds 5" in server_full.value.message
    # No one's live secret was dropped to make room.
    assert all(isinstance(table.lookup(s), Grant) for s in [*alice, *bob])
    clock.now += 60  # alice's first expires: she (and the server) may mint one more
    table.mint("alice")
    assert table.live_for("alice") == 3 and len(table) == 5


def test_expired_secrets_are_remembered_within_a_bound() -> None:
    clock = FakeClock()
    table = ClientSecrets(remembered_expired=2, clock=clock)
    secrets = [table.mint("alice", ttl_s=10)[0] for _ in range(3)]
    clock.now += 10
    table.sweep()
    assert len(table) == 0
    # The oldest expired one is forgotten (None: "invalid"), the last two are "expired".
    assert [type(table.lookup(s)).__name__ for s in secrets] == ["NoneType", "Expired", "Expired"]


# --- the authenticator ----------------------------------------------------------------------


def secret_auth(clock: FakeClock, max_failures: int = 10) -> Authenticator:
    return Authenticator(
        KEYS,
        throttle=FailureThrottle(max_failures=max_failures, window_s=60, clock=clock),
        secrets=ClientSecrets(clock=clock),
    )


def test_secrets_open_sessions_only_and_expired_ones_are_refused_clearly() -> None:
    clock = FakeClock()
    auth = secret_auth(clock)
    config = {"type": "realtime", "instructions": "Be brief."}
    secret, grant = auth.secrets.mint("alice", ttl_s=30, session=config)
    assert auth.identify_caller(connection(key=secret)) == Caller("alice", grant)
    assert auth.identify_caller(connection(key="bob-key")) == Caller("bob")
    ws = connection(kind="websocket")
    ws.scope["query_string"] = f"api_key={secret}".encode()
    assert auth.identify_caller(ws) == Caller("alice", grant)
    ws = connection(kind="websocket")
    ws.scope["subprotocols"] = ["realtime", f"openai-insecure-api-key.{secret}"]
    assert auth.identify_caller(ws) == Caller("alice", grant)
    # Every other route wants a real key.
    assert auth.identify(connection(key=secret)) == SECRET_NOT_ACCEPTED
    assert auth.identify(connection(key="alice-key")) == "alice"
    clock.now += 30
    expired = auth.identify_caller(connection(key=secret))
    assert isinstance(expired, Refusal) and expired.status == 401
    assert expired.code == "client_secret_expired"
    assert "expired at 1970-01-01 00:17:10 UTC" in expired.message
    assert "POST /v1/realtime/client_secrets" in expired.message


def test_wrong_secrets_are_throttled_like_wrong_keys_and_expired_ones_are_not() -> None:
    clock = FakeClock()
    auth = secret_auth(clock, max_failures=3)
    secret, _ = auth.secrets.mint("alice", ttl_s=10)
    clock.now += 10
    for _ in range(5):  # whoever holds an expired secret was given it: not a guesser
        assert auth.identify_caller(connection(key=secret, client="198.51.100.1")) != UNAUTHORIZED
    assert auth.throttle.retry_after("198.51.100.1") is None
    for n in range(3):
        wrong = auth.identify_caller(connection(key=f"ek_guess{n}", client="198.51.100.2"))
        assert wrong == UNAUTHORIZED
    live, _ = auth.secrets.mint("alice")
    blocked = auth.identify_caller(connection(key=live, client="198.51.100.2"))
    assert isinstance(blocked, Refusal) and blocked.status == 429


def test_no_log_record_holds_a_secret(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    clock = FakeClock()
    auth = secret_auth(clock)
    secret, _ = auth.secrets.mint("alice", ttl_s=10)
    auth.identify_caller(connection(key=secret))
    auth.identify(connection(key=secret))
    clock.now += 10
    auth.identify_caller(connection(key=secret))
    auth.identify_caller(connection(key=secret + "wrong"))
    logged = "\n".join(
        f"{record.getMessage()} {record.args!r} {record.__dict__!r}" for record in caplog.records
    )
    assert "expired client secret" in logged and "wrong API key" in logged
    assert secret not in logged


# --- how a session starts -------------------------------------------------------------------


def updates(start: Any) -> list[dict[str, Any]]:
    return [json.loads(text)["session"] for text in start.updates]


def test_a_session_starts_with_the_query_then_the_calls_then_the_secrets_configuration() -> None:
    secret = {"type": "realtime", "character": "maren", "user_name": "Sam", "instructions": "A"}
    call = {"type": "realtime", "instructions": "B", "audio": {"output": {"voice": "joe"}}}
    start = session_start("alice", {}, [secret, call])
    assert (start.user, start.character, start.user_name, start.kind) == (
        "alice", "maren", "Sam", "realtime",
    )  # fmt: skip
    # The constructor takes character and name (she greets in start()); the rest, in order.
    assert updates(start) == [
        {"type": "realtime", "instructions": "A"},
        {"type": "realtime", "instructions": "B", "audio": {"output": {"voice": "joe"}}},
    ]
    start = session_start("alice", {"character": "theo", "user_name": "Kim"}, [secret])
    assert (start.character, start.user_name) == ("theo", "Kim")
    later = session_start("alice", {}, [secret, {"type": "realtime", "character": "jess"}])
    assert later.character == "jess" and updates(later) == [
        {"type": "realtime", "instructions": "A"}
    ]
    # Nothing given ahead: the query alone, as before.
    plain = session_start("bob", {"intent": "transcription", "character": "maren"})
    assert (plain.kind, plain.character, plain.updates) == ("transcription", "maren", ())


def test_an_explicit_null_character_is_kept_and_kinds_must_agree() -> None:
    start = session_start("alice", {}, [{"type": "realtime", "character": None}])
    assert start.character is None
    assert updates(start) == [{"type": "realtime", "character": None}]
    assert (
        session_start(
            "alice", {"character": "theo"}, [{"type": "realtime", "character": None}]
        ).updates
        == ()
    )
    transcription = session_start("alice", {}, [{"type": "transcription"}])
    assert transcription.kind == "transcription" and transcription.updates == ()
    with pytest.raises(ConflictingStart, match="realtime one"):
        session_start("alice", {"intent": "transcription"}, [{"type": "realtime"}])


# --- checking a configuration given ahead --------------------------------------------------------


@pytest.fixture
def checker() -> SessionChecker:
    settings = Settings(instructions="Be kind.")
    return SessionChecker(settings, FakeEngines(FakeLLM([])), lambda: ["maren"])


def test_a_good_configuration_is_described_as_the_session_it_makes(checker: SessionChecker) -> None:
    session = checker.check(
        {"type": "realtime", "instructions": "Be brief.", "character": "maren",
         "audio": {"output": {"voice": "marin"}}, "tools": [{"type": "function", "name": "x"}]}
    )  # fmt: skip
    assert session["id"].startswith("sess_") and session["object"] == "realtime.session"
    assert session["type"] == "realtime" and session["instructions"] == "Be brief."
    assert session["character"] == "maren"
    assert session["audio"]["output"]["voice"] == FakeEngines(FakeLLM([])).voices.default
    assert session["not_applied"] == []
    assert [tool["name"] for tool in session["tools"]] == ["x"]
    transcription = checker.check({"type": "transcription"})
    assert transcription["object"] == "realtime.transcription_session"


@pytest.mark.parametrize(
    ("session", "message", "param"),
    [
        ([], "session must be a JSON object", "session"),
        ({}, "session.type must be 'realtime' or 'transcription'", "session.type"),
        ({"type": "realtime", "audio": {"output": {"voice": "nobody"}}}, "unknown voice 'nobody'",
         "session.audio.output.voice"),
        ({"type": "realtime", "output_modalities": ["text", "audio"]}, "output_modalities",
         "session.output_modalities"),
        ({"type": "realtime", "character": "nobody"},
         "unknown character 'nobody'; available: maren", "session.character"),
        ({"type": "realtime", "max_output_tokens": "lots"}, "invalid session.max_output_tokens",
         "session.max_output_tokens.int"),
    ],
)  # fmt: skip
def test_a_bad_configuration_is_refused_saying_what_is_wrong(
    checker: SessionChecker, session: object, message: str, param: str
) -> None:
    with pytest.raises(ProtocolError) as refused:
        checker.check(session)
    assert message in refused.value.message and refused.value.param == param
