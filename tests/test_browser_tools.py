"""The web client shows a call's function calls: headless Chromium on a real server.

As in OpenAI's WebRTC pattern, the browser holds the call and the app's own server (here
the test) attaches a sideband WebSocket to it with the official SDK: it gives the session a
function tool, asks for a call with the embedded model (a forced tool choice always gives a
valid one), and answers it. The page must show the call's name, its arguments and then its
output, as text: markup in a call never becomes elements.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from openai import AsyncOpenAI

from tests.browser_helpers import CHROMIUM, chromium_page
from tests.browser_helpers import write_microphone_wav as write_wav
from tests.conftest import REPO, ServerProcess
from tests.realtime_helpers import EventLog, silence
from tests.test_tools_e2e import WEATHER

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} missing (apt install chromium)"),
]

ARTIFACTS = REPO / "artifacts"
#: The page's own cap on a shown argument or output (webclient/tool-activity.js SHOWN_CHARS).
SHOWN_CHARS = 120


@contextlib.asynccontextmanager
async def sideband(server: ServerProcess, call_id: str) -> AsyncIterator[EventLog]:
    """The app server's side: the official SDK's ``connect(call_id=...)`` to the page's call."""
    client = AsyncOpenAI(
        api_key=server.api_key, base_url=f"{server.http}/v1", websocket_base_url=server.ws_base
    )
    async with client.realtime.connect(call_id=call_id) as connection:
        log = EventLog(connection)
        try:
            yield log
        finally:
            await log.aclose()


def compact(text: str) -> str:
    """JSON as the page writes it (JavaScript's ``JSON.stringify``)."""
    return json.dumps(json.loads(text), separators=(",", ":"), ensure_ascii=False)


async def in_call(page: Any, server: ServerProcess) -> str:
    """Start a call on the page; its call id (the page's own ``voiceApp.call.callId``)."""
    await page.goto(server.http)
    await page.click("#call-button")
    await page.locator("#status", has_text="In call").wait_for(timeout=20_000)
    call_id: str = await page.evaluate("window.voiceApp.call.callId")
    assert call_id.startswith("rtc_"), call_id
    return call_id


async def test_the_page_shows_a_sideband_tools_call_and_its_output(
    server: ServerProcess, tmp_path: Path
) -> None:
    wav = write_wav(tmp_path / "mic.wav", [silence(1.0)])  # nobody speaks: typed turns only
    async with chromium_page(wav, tmp_path / "profile") as page:
        call_id = await in_call(page, server)
        async with sideband(server, call_id) as app:
            await app.connection.session.update(
                session={
                    "type": "realtime", "tools": [WEATHER],
                    "instructions": "You are a helpful assistant. Answer in one short sentence.",
                }  # type: ignore[typeddict-item]
            )  # fmt: skip
            await app.wait_for("session.updated", timeout=10)
            assert await page.locator(".tool").count() == 0  # tools, but no call yet

            await app.connection.conversation.item.create(
                item={"type": "message", "role": "user",
                      "content": [{"type": "input_text", "text": "What's the weather in Paris?"}]}
            )  # fmt: skip
            await app.connection.response.create(
                response={"tool_choice": {"type": "function", "name": "get_weather"}}
            )
            asked = page.locator(".msg.user", has_text="What's the weather in Paris?")
            await asked.wait_for(timeout=10_000)  # a typed message is shown as it was sent
            done = await app.wait_for("response.done", timeout=120)
            assert done.response.status == "completed", done.response.status_details
            (call,) = [item for item in done.response.output if item.type == "function_call"]
            assert call.name == "get_weather"

            line = page.locator(f'.tool[data-call-id="{call.call_id}"]')
            await line.locator(".tool-args:not(.pending)").wait_for(timeout=10_000)
            assert await line.locator(".tool-name").inner_text() == "get_weather"
            shown = await line.locator(".tool-args").inner_text()
            written = compact(call.arguments)
            if len(written) <= SHOWN_CHARS:
                assert shown == written
            else:
                assert shown == written[: SHOWN_CHARS - 1] + "…"
            assert await line.locator(".tool-output").is_hidden()  # no output yet
            assert await line.get_attribute("data-status") == "completed"
            assert await line.locator(".tool-mark").is_hidden()

            # The app answers the call; the reply that follows comes after the line.
            await app.connection.conversation.item.create(
                item={"type": "function_call_output", "call_id": call.call_id,
                      "output": json.dumps({"forecast": "sunny"})}
            )  # fmt: skip
            after = len(app.events)
            await app.connection.response.create(response={"tool_choice": "none"})
            output = line.locator(".tool-output")
            await output.wait_for(state="visible", timeout=10_000)
            assert await output.inner_text() == '{"forecast":"sunny"}'
            final = await app.wait_for("response.done", after=after, timeout=120)
            assert final.response.status == "completed", final.response.status_details
            (message,) = [item for item in final.response.output if item.type == "message"]
            reply = page.locator(f'.msg.assistant[data-item-id="{message.id}"]:not(.pending)')
            await reply.wait_for(timeout=30_000)
            order = await page.evaluate(
                """([line, reply]) => {
                  const a = document.querySelector(line), b = document.querySelector(reply);
                  return !!(a.compareDocumentPosition(b) & Node.DOCUMENT_POSITION_FOLLOWING);
                }""",
                [f'.tool[data-call-id="{call.call_id}"]', f'.msg[data-item-id="{message.id}"]'],
            )
            assert order, "the reply should follow the call's line"

            # Markup in a call (here the app's own record of one) is shown, never run.
            markup = '<b>Oslo</b><img src="x" onerror="window.injected = 1">'
            await app.connection.conversation.item.create(
                item={"type": "function_call", "call_id": "call_markup", "name": "<i>get</i>",
                      "arguments": json.dumps({"city": markup, "note": "x" * 300})}
            )  # fmt: skip
            await app.connection.conversation.item.create(
                item={"type": "function_call_output", "call_id": "call_markup",
                      "output": "<script>window.injected = 2</script><b>bold</b>"}
            )  # fmt: skip
            marked = page.locator('.tool[data-call-id="call_markup"]')
            await marked.locator(".tool-output").wait_for(state="visible", timeout=10_000)
            assert await marked.locator(".tool-name").inner_text() == "<i>get</i>"
            args = await marked.locator(".tool-args").inner_text()
            assert args.startswith('{"city":"<b>Oslo</b><img src=\\"x\\" onerror=')
            assert args.endswith("…") and len(args) == SHOWN_CHARS  # 300 x's are cut
            assert await marked.locator(".tool-output").inner_text() == (
                "<script>window.injected = 2</script><b>bold</b>"
            )
            assert await page.locator(".tool :is(b, i, img, script)").count() == 0
            assert await page.evaluate("window.injected") is None
            assert not app.of_type("error"), app.of_type("error")
            ARTIFACTS.mkdir(exist_ok=True)
            await page.screenshot(path=str(ARTIFACTS / "browser-tools.png"), full_page=True)
        errors = [line for line in page.console_lines if line.startswith("pageerror")]
        assert not errors, errors


async def test_a_cut_off_call_is_marked_and_nothing_else_makes_a_line(
    server: ServerProcess, tmp_path: Path
) -> None:
    """The page's own module, fed the events of a call that was cancelled half-way."""
    wav = write_wav(tmp_path / "mic.wav", [silence(0.5)])
    async with chromium_page(wav, tmp_path / "profile") as page:
        await page.goto(server.http)
        seen = await page.evaluate(
            """async () => {
              const { ToolActivity } = await import("/tool-activity.js");
              const box = document.createElement("div");
              const tools = new ToolActivity(box);
              const call = (status, args) => ({type: "function_call", id: "item_1",
                call_id: "call_1", name: "get_weather", arguments: args, status});
              const handled = [
                {type: "session.updated", session: {tools: []}},
                {type: "conversation.item.added", item: {type: "message", role: "user",
                  id: "item_0", content: []}},
                {type: "response.output_audio_transcript.delta", item_id: "item_2", delta: "Hi"},
                {type: "response.output_item.added", item: call("in_progress", "")},
                {type: "conversation.item.added", item: call("in_progress", "")},
                {type: "response.function_call_arguments.delta", call_id: "call_1",
                 delta: '{"city": "Pa'},
              ].map((event) => tools.handle(event));
              const before = box.querySelector(".tool-args").textContent;
              tools.handle({type: "response.output_item.done",
                            item: call("incomplete", '{"city": "Pa')});
              tools.handle({type: "conversation.item.done",
                            item: call("incomplete", '{"city": "Pa')});
              const line = box.querySelector(".tool");
              return {handled, before, lines: box.children.length, cls: line.className,
                      args: line.querySelector(".tool-args").textContent,
                      mark: line.querySelector(".tool-mark").textContent,
                      markHidden: line.querySelector(".tool-mark").hidden};
            }"""
        )
        assert seen["handled"] == [False, False, False, True, True, False], seen
        assert seen["before"] == "…"  # arguments shown once the call is over
        assert seen["lines"] == 1
        assert "incomplete" in seen["cls"].split()
        assert seen["args"] == '{"city": "Pa'  # as far as it went (not JSON: shown as is)
        assert seen["mark"] == "cut off" and not seen["markHidden"]
        assert await page.locator(".tool").count() == 0  # the page's own transcript: none
