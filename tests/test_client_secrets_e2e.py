"""Client secrets, multipart offers and sideband connections against a real ``voice serve``
with two users, driven by the official ``openai`` SDK, aiortc peers and a raw WebSocket.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
import websockets
from openai import AsyncOpenAI

from tests.conftest import ServerProcess, start_server
from tests.realtime_helpers import EventLog, realtime, say_text
from tests.webrtc_helpers import ClientPeer, HttpResponse, client_peer, http
from voice.audio import rms_dbfs

pytestmark = pytest.mark.e2e

ALICE, BOB = "alice-key", "bob-key"
BRIEF = "Answer in one short sentence."


@pytest.fixture(scope="module")
def two_users(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A real server (embedded models) with two users, alice and bob."""
    running = start_server(
        tmp_path_factory.mktemp("secrets"),
        VOICE_API_KEYS=json.dumps({ALICE: "alice", BOB: "bob"}),
    )
    yield running
    running.stop()


def client(server: ServerProcess, key: str) -> AsyncOpenAI:
    return AsyncOpenAI(api_key=key, base_url=f"{server.http}/v1", websocket_base_url=server.ws_base)


async def mint(server: ServerProcess, key: str, **params: Any) -> Any:
    return await client(server, key).realtime.client_secrets.create(**params)


def offer_with(server: ServerProcess, key: str, responses: list[HttpResponse]) -> Any:
    """Signals an offer as ``application/sdp`` with ``key`` (an API key or a secret)."""

    async def signal(offer: str) -> str:
        response = await http(
            "POST", f"{server.http}/v1/realtime/calls", offer, "application/sdp", key=key
        )
        responses.append(response)
        assert response.status == 201, response.text
        return response.text

    return signal


@contextlib.asynccontextmanager
async def sideband(server: ServerProcess, key: str, call_id: str) -> AsyncIterator[EventLog]:
    """The official SDK's ``connect(call_id=...)``: a sideband connection to a call."""
    async with client(server, key).realtime.connect(call_id=call_id) as connection:
        log = EventLog(connection)
        try:
            yield log
        finally:
            await log.aclose()


async def ws_refusal(url: str, key: str) -> tuple[int, dict[str, Any]]:
    """The status and error body of a refused WebSocket handshake."""
    with pytest.raises(websockets.InvalidStatus) as refused:
        async with websockets.connect(url, additional_headers={"Authorization": f"Bearer {key}"}):
            pass
    response = refused.value.response
    return response.status_code, json.loads(response.body or b"{}")


# --- minting, and a session opened with the secret --------------------------------------------


async def test_sdk_mints_a_secret_and_connects_with_it(two_users: ServerProcess) -> None:
    before = time.time()
    secret = await mint(
        two_users,
        ALICE,
        expires_after={"anchor": "created_at", "seconds": 120},
        session={"type": "realtime", "instructions": BRIEF, "output_modalities": ["text"]},
    )
    assert secret.value.startswith("ek_")
    assert before + 119 <= secret.expires_at <= time.time() + 121
    assert secret.session.type == "realtime" and secret.session.id.startswith("sess_")
    assert secret.session.instructions == BRIEF
    assert secret.session.output_modalities == ["text"]
    default = await mint(two_users, ALICE)  # no arguments: 600 s, the default session
    assert 599 <= default.expires_at - time.time() <= 601
    assert default.session.output_modalities == ["audio"]

    # The browser's side: the secret alone, as its API key.
    async with realtime(two_users.ws_base, secret.value) as log:
        updated = await log.wait_for("session.updated", timeout=10)
        assert updated.session.instructions == BRIEF
        assert updated.session.output_modalities == ["text"]
        await say_text(log, "Say hello.")
        done = await log.wait_for("response.done", timeout=120)
        assert done.response.status == "completed"
        assert log.of_type("response.output_text.done")[0].text.strip()
        assert not log.of_type("response.output_audio.delta")

    # It opens sessions only: no memories, no more secrets.
    memory = await http("GET", f"{two_users.http}/v1/memory", key=secret.value)
    assert memory.status == 401 and memory.json()["error"]["code"] == "client_secret_not_accepted"
    with pytest.raises(openai.AuthenticationError) as refused:
        await mint(two_users, secret.value)
    assert "client secrets open Realtime sessions only" in str(refused.value)
    assert secret.value not in two_users.log()


async def test_bad_mint_requests_are_refused_saying_why(two_users: ServerProcess) -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"expires_after": {"anchor": "created_at", "seconds": 5}}, "expires_after.seconds"),
        ({"expires_after": {"anchor": "last_used", "seconds": 60}}, "expires_after.anchor"),
        ({"session": {"type": "realtime", "audio": {"output": {"voice": "nobody"}}}},
         "session.audio.output.voice"),
        ({"session": {"type": "realtime", "character": "nobody"}}, "session.character"),
    ]  # fmt: skip
    for params, param in cases:
        with pytest.raises(openai.BadRequestError) as refused:
            await mint(two_users, ALICE, **params)
        assert refused.value.status_code == 400
        assert refused.value.body["param"] == param, refused.value.body  # type: ignore[index]
    with pytest.raises(openai.AuthenticationError):
        await mint(two_users, "ek_not-a-secret-of-ours")


async def test_an_expired_secret_is_refused_with_a_clear_message(two_users: ServerProcess) -> None:
    secret = await mint(two_users, BOB, expires_after={"anchor": "created_at", "seconds": 10})
    probe = f"{two_users.http}/v1/realtime/calls/rtc_none/hangup"
    assert (await http("POST", probe, "", key=secret.value)).status == 404  # live: no such call
    async with asyncio.timeout(20):  # it expires 10 s after it was made
        while True:
            if (await http("POST", probe, "", key=secret.value)).status == 401:
                break
            await asyncio.sleep(0.5)
    status, body = await ws_refusal(f"{two_users.ws_base}/realtime", secret.value)
    assert status == 401 and body["error"]["code"] == "client_secret_expired"
    assert "expired at" in body["error"]["message"]
    offer = await http(
        "POST", f"{two_users.http}/v1/realtime/calls", "v=0", "application/sdp", key=secret.value
    )
    assert offer.status == 401 and offer.json()["error"]["code"] == "client_secret_expired"


# --- WebRTC: a secret's call, the multipart form, the sideband --------------------------------


async def test_a_secret_opens_a_webrtc_call_that_other_users_cannot_reach(
    two_users: ServerProcess,
) -> None:
    secret = await mint(two_users, ALICE, session={"type": "realtime", "instructions": BRIEF})
    responses: list[HttpResponse] = []
    async with client_peer(offer_with(two_users, secret.value, responses)) as peer:
        updated = await peer.wait_for("session.updated", timeout=20)
        assert updated["session"]["instructions"] == BRIEF
        call_id = responses[0].headers["location"].rsplit("/", 1)[1]
        assert call_id.startswith("rtc_")

        bob_secret = await mint(two_users, BOB)
        hang_up = f"{two_users.http}/v1/realtime/calls/{call_id}/hangup"
        for key in (BOB, bob_secret.value):
            status, body = await ws_refusal(f"{two_users.ws_base}/realtime?call_id={call_id}", key)
            assert (status, body["error"]["code"]) == (404, "call_not_found")
            assert (await http("POST", hang_up, "", key=key)).status == 404
        unknown = await ws_refusal(f"{two_users.ws_base}/realtime?call_id=rtc_unknown", ALICE)
        assert unknown[0] == 404  # the same answer as for bob: ids do not leak
        peer.send({"type": "session.update", "session": {"type": "realtime"}})
        await peer.wait_for("session.updated", lambda e: e is not updated)
        assert not peer.ended.is_set()  # the call went on


async def test_sdk_multipart_call_and_a_sideband_that_watches_and_steers_it(
    two_users: ServerProcess,
) -> None:
    alice = client(two_users, ALICE)
    call_ids: list[str] = []

    async def signal(offer: str) -> str:
        raw = await alice.realtime.calls.with_raw_response.create(
            sdp=offer, session={"type": "realtime", "instructions": BRIEF}
        )
        assert raw.status_code == 201
        call_ids.append(raw.headers["location"].rsplit("/", 1)[1])
        answer: str = raw.parse().text
        return answer

    async with client_peer(signal) as peer:
        updated = await peer.wait_for("session.updated", timeout=20)
        assert updated["session"]["instructions"] == BRIEF
        (call_id,) = call_ids
        async with sideband(two_users, ALICE, call_id) as watcher:
            # A reply asked for over the data channel: the sideband sees it too.
            peer.send({"type": "response.create"})
            done = await peer.wait_for("response.done", timeout=120)
            seen = await watcher.wait_for("response.done", timeout=10)
            assert seen.response.id == done["response"]["id"]
            assert watcher.of_type("output_audio_buffer.started")
            assert not watcher.of_type("session.created")  # it joined; nothing was started
            await peer.wait_for("output_audio_buffer.stopped", timeout=60)

            # A reply asked for on the sideband: the call speaks it.
            heard_from = asyncio.get_running_loop().time()
            await watcher.connection.response.create()
            started = await peer.wait_for(
                "output_audio_buffer.started", lambda e: e["response_id"] != seen.response.id
            )
            second = await peer.wait_for(
                "response.done", lambda e: e["response"]["id"] == started["response_id"],
                timeout=120,
            )  # fmt: skip
            assert second["response"]["status"] == "completed"
            await watcher.wait_for(
                "response.done", lambda e: e.response.id == started["response_id"]
            )
            await peer.wait_for("output_audio_buffer.stopped", timeout=60)
            await asyncio.sleep(0.3)  # the last frames in flight
            audio = peer.received_audio(since=heard_from)
            assert rms_dbfs(audio) > -35.0, rms_dbfs(audio)

            # A mistake on the sideband is answered there; the call goes on.
            await watcher.connection.send({"type": "no.such.event"})  # type: ignore[arg-type]
            error = await watcher.wait_for("error")
            assert error.error.code == "unknown_event_type"
        # The sideband went away: the call goes on.
        peer.send({"type": "conversation.item.create", "item": {"type": "message", "role": "user",
                   "content": [{"type": "input_text", "text": "Thanks."}]}})  # fmt: skip
        await peer.wait_for("conversation.item.added", lambda e: e["item"]["role"] == "user")
        assert not peer.ended.is_set()


async def test_the_sideband_is_closed_with_the_reason_when_the_call_ends(
    two_users: ServerProcess,
) -> None:
    responses: list[HttpResponse] = []
    async with client_peer(offer_with(two_users, BOB, responses)) as peer:
        await peer.wait_for("session.created", timeout=20)
        location = responses[0].headers["location"]
        call_id = location.rsplit("/", 1)[1]
        url = f"{two_users.ws_base}/realtime?call_id={call_id}"
        async with websockets.connect(
            url, additional_headers={"Authorization": f"Bearer {BOB}"}
        ) as ws:
            await ws.send(json.dumps({"type": "session.update", "session": {"type": "realtime"}}))
            assert json.loads(await ws.recv())["type"] == "session.updated"
            hung_up = await http("POST", f"{two_users.http}{location}/hangup", "", key=BOB)
            assert hung_up.status == 200
            with pytest.raises(websockets.ConnectionClosedOK) as closed:
                async with asyncio.timeout(20):
                    while True:
                        await ws.recv()
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1000
            assert closed.value.rcvd.reason == "the call ended: hung up by the client"
        async with asyncio.timeout(40):
            await peer.ended.wait()


async def test_bad_multipart_offers_get_clear_errors(
    two_users: ServerProcess, tmp_path: Path
) -> None:
    peer = ClientPeer()
    try:
        await peer.pc.setLocalDescription(await peer.pc.createOffer())
        offer = peer.pc.localDescription.sdp
    finally:
        await peer.aclose()
    alice = client(two_users, ALICE)
    with pytest.raises(openai.BadRequestError) as refused:
        await alice.realtime.calls.create(
            sdp=offer, session={"type": "realtime", "audio": {"output": {"voice": "nobody"}}}
        )
    assert "unknown voice 'nobody'" in str(refused.value)
    boundary = "xyz"
    only_session = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="session"\r\n\r\n'
        f'{{"type": "realtime"}}\r\n--{boundary}--\r\n'
    )
    response = await http(
        "POST", f"{two_users.http}/v1/realtime/calls", only_session,
        f"multipart/form-data; boundary={boundary}", key=ALICE,
    )  # fmt: skip
    assert response.status == 400 and "no 'sdp' part" in response.json()["error"]["message"]
    wrong = await http(
        "POST", f"{two_users.http}/v1/realtime/calls", "v=0", "text/plain", key=ALICE
    )
    assert wrong.status == 415 and "multipart/form-data" in wrong.json()["error"]["message"]
    assert two_users.health()["webrtc_calls"] == 0
