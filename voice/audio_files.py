"""Audio files in and out of the ``/v1/audio`` routes: any file ffmpeg reads (WAV, MP3, FLAC,
Ogg/Opus, WebM, M4A...) decoded to 16 kHz mono for Whisper, and speech encoded as it is
synthesized (raw PCM, WAV, MP3, Opus, AAC, FLAC), one piece at a time, so the first
bytes leave before the last sentence is spoken. PyAV (aiortc's own dependency) does both.
"""

from __future__ import annotations

import io
import struct
from typing import Final

import av
import numpy as np
from av.audio.stream import AudioStream

from voice.audio import Float32Array, float_to_pcm16

#: Where a format's encoder runs: (container, codec); ``None``: written here (pcm, wav).
ENCODINGS: Final[dict[str, tuple[str, str] | None]] = {
    "pcm": None,
    "wav": None,
    "mp3": ("mp3", "libmp3lame"),
    "opus": ("ogg", "libopus"),
    "aac": ("adts", "aac"),
    "flac": ("flac", "flac"),
}
MEDIA_TYPES: Final = {
    "pcm": "audio/pcm",
    "wav": "audio/wav",
    "mp3": "audio/mpeg",
    "opus": "audio/ogg",
    "aac": "audio/aac",
    "flac": "audio/flac",
}


class AudioFileError(ValueError):
    """The upload is not audio ffmpeg can read, or is longer than allowed."""


def decode_audio(data: bytes, *, rate: int, max_seconds: float) -> Float32Array:
    """The first audio stream of the file ``data``, mono float32 at ``rate``.

    Raises :class:`AudioFileError` for what is not audio, and as soon as the decoded audio
    passes ``max_seconds`` (a small file may hold hours of low-bitrate audio).
    """
    try:
        container = av.open(io.BytesIO(data), mode="r")
    except av.FFmpegError as exc:
        raise AudioFileError(f"the file is not audio this server can read ({exc})") from None
    pieces: list[Float32Array] = []
    length = 0
    try:
        if not container.streams.audio:
            raise AudioFileError("the file has no audio stream")
        resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
        for frame in container.decode(container.streams.audio[0]):
            for converted in resampler.resample(frame):
                piece = converted.to_ndarray().reshape(-1).astype(np.float32, copy=False)
                pieces.append(piece)
                length += piece.size
            if length > max_seconds * rate:
                raise AudioFileError(f"the audio is longer than {max_seconds:.0f} s")
        for converted in resampler.resample(None):
            pieces.append(converted.to_ndarray().reshape(-1).astype(np.float32, copy=False))
    except av.FFmpegError as exc:
        raise AudioFileError(f"the audio could not be decoded ({exc})") from None
    finally:
        container.close()
    if not pieces:
        raise AudioFileError("the file holds no audio samples")
    return np.concatenate(pieces)


def wav_header(rate: int) -> bytes:
    """The header of a 16-bit mono WAV stream of unknown length (sizes at their maximum,
    as streaming servers send them; readers take the data to the end of the stream)."""
    unknown = 0xFFFFFFFF
    return (
        b"RIFF" + struct.pack("<I", unknown) + b"WAVE"
        + b"fmt " + struct.pack("<IHHIIHH", 16, 1, 1, rate, rate * 2, 2, 16)
        + b"data" + struct.pack("<I", unknown)
    )  # fmt: skip


class _Collected(io.RawIOBase):
    """A write-only file that keeps what the muxer wrote until it is taken."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self._parts.append(bytes(data))
        return len(data)

    def take(self) -> bytes:
        out, self._parts = b"".join(self._parts), []
        return out


class StreamEncoder:
    """Encodes mono float audio at ``rate`` into ``format``, piece by piece.

    :meth:`encode` returns the bytes ready so far (an encoder may hold a few milliseconds
    back); :meth:`finish` the rest. Not thread-safe; one per response.
    """

    def __init__(self, format: str, rate: int) -> None:
        if format not in ENCODINGS:
            raise ValueError(f"unknown format {format!r}; known: {', '.join(ENCODINGS)}")
        self.format = format
        self.rate = rate
        self._started = False
        self._sink: _Collected | None = None
        encoding = ENCODINGS[format]
        if encoding is not None:
            container_format, codec = encoding
            self._sink = _Collected()
            # Ogg pages are otherwise held for a second: end one every 20 ms packet.
            options = {"page_duration": "20000"} if container_format == "ogg" else {}
            self._container = av.open(
                self._sink, mode="w", format=container_format, options=options
            )
            self._stream: AudioStream = self._container.add_stream(codec, rate=rate)  # type: ignore[assignment]
            self._stream.layout = "mono"

    def encode(self, samples: Float32Array) -> bytes:
        pcm = float_to_pcm16(samples)
        if self._sink is None:
            header = b"" if self._started or self.format == "pcm" else wav_header(self.rate)
            self._started = True
            return header + pcm
        if not samples.size:
            return self._sink.take()
        frame = av.AudioFrame.from_ndarray(
            np.frombuffer(pcm, dtype=np.int16)[None, :], format="s16", layout="mono"
        )
        frame.sample_rate = self.rate
        for packet in self._stream.encode(frame):
            self._container.mux(packet)
        return self._sink.take()

    def finish(self) -> bytes:
        if self._sink is None:
            return b"" if self._started or self.format == "pcm" else wav_header(self.rate)
        for packet in self._stream.encode(None):
            self._container.mux(packet)
        self._container.close()
        return self._sink.take()

    def close(self) -> None:
        """Release the encoder without finishing (the response was abandoned)."""
        if self._sink is not None:
            self._container.close()
