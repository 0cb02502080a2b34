"""The embedded llama.cpp children write with more threads while one call is live."""

from __future__ import annotations

from pathlib import Path

import pytest

from voice.llm import ChatLLM
from voice.llm_pool import EmbeddedLlamaPool
from voice.llm_server import default_gguf_path
from voice.llm_threads import read_threads, write_threads


def test_the_count_is_written_whole_and_a_bad_file_reads_as_none(tmp_path: Path) -> None:
    path = tmp_path / "llm-threads"
    assert read_threads(path) is None
    write_threads(path, 2)
    assert read_threads(path) == 2 and path.read_text() == "2\n"
    assert [p.name for p in tmp_path.iterdir()] == ["llm-threads"]
    for bad in ("", "two\n", "0\n", "-3\n", "100000\n"):
        path.write_text(bad)
        assert read_threads(path) is None
    with pytest.raises(ValueError, match="threads must be 1 to"):
        write_threads(path, 0)


def test_a_pool_without_a_different_lone_count_writes_no_file(tmp_path: Path) -> None:
    same = EmbeddedLlamaPool(default_gguf_path(), threads=2, threads_alone=2, log_dir=tmp_path)
    nowhere = EmbeddedLlamaPool(default_gguf_path(), threads=1, threads_alone=2, log_dir=None)
    for pool in (same, nowhere):
        assert pool.threads_file is None
        pool.set_alone(False)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.e2e
async def test_a_real_child_follows_the_count_from_its_next_completion(tmp_path: Path) -> None:
    pool = EmbeddedLlamaPool(
        default_gguf_path(), threads=1, batch_threads=2, log_dir=tmp_path, threads_alone=2
    )
    await pool.start()
    llm = ChatLLM(pool.base_urls[0], "smollm2", max_tokens=4)
    log = tmp_path / "llm-server.log"
    try:
        assert read_threads(tmp_path / "llm-threads") == 2  # no call yet: alone
        await llm.complete([{"role": "user", "content": "Hi!"}], max_tokens=2)
        assert log.read_text().count("writing threads now 2") == 1
        pool.set_alone(False)
        await llm.complete([{"role": "user", "content": "Hello!"}], max_tokens=2)
        await llm.complete([{"role": "user", "content": "Hey!"}], max_tokens=2)
        text = log.read_text()
        assert text.count("writing threads now 1") == 1  # set once, kept after
        assert text.index("writing threads now 2") < text.index("writing threads now 1")
    finally:
        await llm.aclose()
        await pool.stop()


def test_a_threads_file_that_cannot_be_written_is_logged_not_raised(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    pool = EmbeddedLlamaPool(default_gguf_path(), threads=1, threads_alone=2, log_dir=tmp_path)
    assert pool.threads_file is not None
    pool.threads_file.mkdir()  # a folder where the file should be: os.replace fails
    pool.set_alone(False)  # a call joining must not fail for it
    assert "cannot set 1 writing threads" in caplog.text
