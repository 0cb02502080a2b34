"""The models every session shares, loaded once at start-up with progress and timings."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TextIO, TypeVar

from voice.call_load import CallLoad
from voice.config import Settings
from voice.delivery import read_rules
from voice.inference import ModelWorker
from voice.llm import ChatLLM, ToolMode
from voice.llm_pool import EmbeddedLlamaPool
from voice.llm_server import EMBEDDED_MODEL_ALIAS, default_gguf_path
from voice.remote_speech import RemoteSTT, RemoteVoices
from voice.stage_cpu import os_thread_named
from voice.stt import WhisperSTT, default_whisper_path
from voice.turn_model import SmartTurn, default_turn_model_path
from voice.vad import SileroVadStream
from voice.voices import VoiceLibrary

log = logging.getLogger(__name__)
T = TypeVar("T")
#: How long closing waits for a model call still running (a long transcription).
_JOIN_TIMEOUT_S = 10.0


@dataclass
class Engines:
    """Loaded models; sessions borrow them, only :meth:`aclose` releases them."""

    stt: WhisperSTT | RemoteSTT
    voices: VoiceLibrary
    llm: ChatLLM
    llm_server: EmbeddedLlamaPool | None = None
    #: The end-of-turn model; None: turned off (``turn_model = "off"``).
    turn_model: SmartTurn | None = None
    load_seconds: dict[str, float] = field(default_factory=dict)
    #: The calls borrowing these models now.
    calls: CallLoad = field(default_factory=CallLoad)

    @property
    def tts_pending(self) -> int:
        """TTS calls queued or running, over every loaded voice model."""
        return sum(engine.worker.pending for engine in self.voices.engines)

    async def aclose(self) -> None:
        """Stop the embedded LLM server and the model threads. Safe to call twice."""
        if self.llm_server is not None:
            await self.llm_server.stop()  # first: no restart once shutdown has begun
        await self.llm.aclose()
        models: list[object] = [self.stt, *self.voices.engines, self.turn_model]
        queues = [getattr(model, "worker", None) for model in models]
        workers = [queue for queue in queues if isinstance(queue, ModelWorker)]
        self.stt.close()
        self.voices.close()
        if self.turn_model is not None:
            self.turn_model.close()
        for worker in workers:  # a call running on one finishes first (exit aborts otherwise)
            await asyncio.to_thread(worker.join, _JOIN_TIMEOUT_S)
        if isinstance(self.stt, RemoteSTT):
            await self.stt.aclose()
        if self.voices.remote is not None:
            await self.voices.remote.aclose()


class _Progress:
    """Prints ``[n/total] what ... done in x.x s`` lines, with a dot every second while waiting."""

    def __init__(self, total: int, out: TextIO) -> None:
        self.total = total
        self.out = out
        self.step = 0
        self.seconds: dict[str, float] = {}

    async def run(self, name: str, what: str, work: Callable[[], Awaitable[T]]) -> T:
        self.step += 1
        self.out.write(f"[{self.step}/{self.total}] {what} ")
        self.out.flush()
        started = time.perf_counter()
        task = asyncio.ensure_future(work())
        while not task.done():
            done, _ = await asyncio.wait({task}, timeout=1.0)
            if not done:
                self.out.write(".")
                self.out.flush()
        try:
            result = task.result()
        except BaseException:
            self.out.write(" failed\n")
            raise
        self.seconds[name] = time.perf_counter() - started
        self.out.write(f" done in {self.seconds[name]:.1f} s\n")
        self.out.flush()
        return result


async def load_engines(settings: Settings, out: TextIO = sys.stderr) -> Engines:
    """Load VAD, STT and TTS, and connect to (or start) the LLM; warm its prompt cache."""
    progress = _Progress(total=5 if settings.turn_model == "off" else 6, out=out)
    await progress.run("vad", "loading Silero VAD", lambda: asyncio.to_thread(SileroVadStream))
    # What is loaded is released again (in reverse order) if a later part fails.
    async with contextlib.AsyncExitStack() as loaded:
        turn_model: SmartTurn | None = None
        if settings.turn_model != "off":
            turn_path = settings.turn_model_path or default_turn_model_path()
            turn_model = await progress.run(
                "turn",
                f"loading the end-of-turn model from {turn_path}",
                lambda: asyncio.to_thread(_named_load, "voice-turn", SmartTurn, turn_path),
            )
            loaded.callback(turn_model.close)

        stt: WhisperSTT | RemoteSTT
        if settings.stt_base_url:
            stt = await progress.run(
                "stt",
                f"speech recognition at {settings.stt_base_url} (remote; no local Whisper)",
                lambda: _ready(remote_stt(settings)),
            )
        else:
            stt_path = settings.stt_model_path or default_whisper_path()
            stt = await progress.run(
                "stt",
                f"loading Whisper from {stt_path}",
                lambda: asyncio.to_thread(
                    _named_load,
                    "voice-stt",
                    WhisperSTT,
                    stt_path,
                    language=settings.stt_language,
                    compute_type=settings.stt_compute_type,
                    threads=settings.stt_threads,
                    window_s=settings.stt_window_s,
                ),
            )

        loaded.callback(stt.close)
        if isinstance(stt, RemoteSTT):
            loaded.push_async_callback(stt.aclose)

        # Presets are checked now (a bad one stops the start); the default voice is loaded.
        voices = VoiceLibrary.from_folder(
            settings.voices_dir,
            settings.default_voice,
            read_rules(settings.delivery_rules_file),
            threads=settings.tts_threads,
            remote=remote_voices(settings),
        )
        loaded.callback(voices.close)
        if voices.remote is not None:
            loaded.push_async_callback(voices.remote.aclose)
        voices.set_aliases(
            settings.voice_aliases, configured="voice_aliases" in settings.model_fields_set
        )
        where = f" (spoken at {settings.tts_base_url})" if voices.remote is not None else ""
        await progress.run("tts", f"loading voice '{voices.default}'{where}", voices.get)

        server: EmbeddedLlamaPool | None = None
        base_urls: list[str]
        if settings.llm_base_url:
            base_urls, model = [settings.llm_base_url], settings.llm_model
            what = f"connecting to LLM at {settings.llm_base_url}"
        else:
            gguf = settings.llm_gguf_path or default_gguf_path()
            server = EmbeddedLlamaPool(
                gguf,
                processes=settings.llm_processes,
                threads=settings.llm_threads,
                batch_threads=settings.llm_batch_threads,
                context=settings.llm_context,
                cache_bytes=settings.llm_prompt_cache_mb << 20,
                log_dir=settings.data_dir,
                threads_alone=settings.llm_threads_alone or None,
            )
            loaded.push_async_callback(server.stop)
            copies = f"{settings.llm_processes} embedded llama.cpp servers"
            if settings.llm_processes == 1:
                copies = "embedded llama.cpp server"
            await progress.run(
                "llm_start",
                f"starting {copies} with {gguf.name}",
                lambda: server.start(settings.llm_start_timeout_s),
            )
            base_urls, model = server.base_urls, EMBEDDED_MODEL_ALIAS
            what = "warming the LLM prompt cache"
        llm = ChatLLM(
            base_urls,
            model,
            settings.llm_api_key,
            max_tokens=settings.llm_max_tokens,
            temperature=settings.llm_temperature,
            first_token_timeout_s=settings.llm_first_token_timeout_s,
            stall_timeout_s=settings.llm_stall_timeout_s,
            tool_mode=tool_mode(settings),
        )
        loaded.push_async_callback(llm.aclose)
        warm_messages = [
            {"role": "system", "content": settings.instructions},
            {"role": "user", "content": "Hello!"},
        ]

        async def warm(base_url: str) -> str:
            return await llm.complete(warm_messages, max_tokens=1, base_url=base_url)

        async def warm_all() -> None:
            for base_url in base_urls:  # one at a time: they share the cores
                await warm(base_url)

        await progress.run("llm", what, warm_all)
        if server is not None:  # a child that dies from now on is restarted and warmed again
            server.supervise(warm)
        engines = Engines(stt=stt, voices=voices, llm=llm, llm_server=server, turn_model=turn_model)
        engines.load_seconds = progress.seconds
        if server is not None:
            engines.calls.on_change = server.set_alone
        loaded.pop_all()  # the engines own them now
    return engines


def _named_load(thread_name: str, load: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``load(...)`` on a thread named ``thread_name`` while it runs: the threads the model's
    runtime starts now carry the name (see :mod:`voice.stage_cpu`)."""
    with os_thread_named(thread_name):
        return load(*args, **kwargs)


async def _ready(value: T) -> T:
    return value


def remote_stt(settings: Settings) -> RemoteSTT:
    """The remote speech recognition ``settings`` describe (``stt_base_url`` must be set)."""
    assert settings.stt_base_url
    key = settings.stt_api_key.get_secret_value() if settings.stt_api_key else None
    return RemoteSTT(
        settings.stt_base_url, key, settings.stt_model, language=settings.stt_language,
        timeout_s=settings.stt_timeout_s, max_concurrent=settings.remote_max_concurrent,
    )  # fmt: skip


def remote_voices(settings: Settings) -> RemoteVoices | None:
    """The remote voices ``settings`` describe; ``None``: voices run here."""
    if not settings.tts_base_url:
        return None
    key = settings.tts_api_key.get_secret_value() if settings.tts_api_key else None
    return RemoteVoices(
        settings.tts_base_url, key, settings.tts_model, sample_rate=settings.tts_sample_rate,
        timeout_s=settings.tts_timeout_s, max_concurrent=settings.remote_max_concurrent,
    )  # fmt: skip


def tool_mode(settings: Settings) -> ToolMode:
    """How function calls are asked of the chat model (see ``llm_tool_calls``)."""
    if settings.llm_tool_calls != "auto":
        return settings.llm_tool_calls
    return "native" if settings.llm_base_url else "constrained"
