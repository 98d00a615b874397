import hashlib
import json
import os
from pathlib import Path

import pytest

from agents.llm import LLMError, model_file
from agents.llm.model_file import ModelSource, assemble, ensure_model_file, verify

PARTS = [b"GGUF-head-", b"middle-bytes-", b"tail"]
WHOLE = b"".join(PARTS)


@pytest.fixture(autouse=True)
def fresh_process_memory(monkeypatch):
    # Each test plays a fresh process: nothing verified yet.
    monkeypatch.setattr(model_file, "_verified", set())


def chunk_set(directory: Path, parts=PARTS, sha256: str | None = None) -> ModelSource:
    directory.mkdir()
    chunks = []
    for number, data in enumerate(parts, start=1):
        chunk = directory / f"part{number:02d}.bin"
        chunk.write_bytes(data)
        chunks.append(chunk)
    return ModelSource(chunks=tuple(chunks), size=len(WHOLE), sha256=sha256 or hashlib.sha256(WHOLE).hexdigest())


def test_chunks_are_joined_in_order_into_the_model_file(tmp_path):
    source = chunk_set(tmp_path / "chunks")
    target = tmp_path / "data" / "models" / "model.gguf"

    assert ensure_model_file(source, target) == target

    assert target.read_bytes() == WHOLE
    assert sorted(p.name for p in target.parent.iterdir()) == ["model.gguf", "model.gguf.verified.json"]


def test_chunks_with_the_wrong_checksum_are_refused_and_leave_nothing_behind(tmp_path):
    source = chunk_set(tmp_path / "chunks", sha256="0" * 64)
    target = tmp_path / "models" / "model.gguf"

    with pytest.raises(LLMError) as caught:
        assemble(source, target)

    assert f"but {len(WHOLE)} bytes with sha256 {'0' * 64} were expected" in str(caught.value)
    assert "uv sync --extra local --reinstall" in str(caught.value)
    assert list(target.parent.iterdir()) == []


def test_a_missing_chunk_is_named(tmp_path):
    source = chunk_set(tmp_path / "chunks")
    source.chunks[1].unlink()

    with pytest.raises(LLMError, match=r"part02\.bin"):
        assemble(source, tmp_path / "model.gguf")


def test_a_damaged_model_file_is_refused_with_the_fix(tmp_path):
    source = chunk_set(tmp_path / "chunks")
    target = tmp_path / "model.gguf"
    target.write_bytes(WHOLE.replace(b"middle", b"MIDDLE"))

    with pytest.raises(LLMError) as caught:
        ensure_model_file(source, target)

    assert f"has sha256 {hashlib.sha256(target.read_bytes()).hexdigest()}" in str(caught.value)
    assert f"delete {str(target)!r}" in str(caught.value)
    assert not (tmp_path / "model.gguf.verified.json").exists()


def test_a_model_file_of_the_wrong_size_is_refused(tmp_path):
    source = chunk_set(tmp_path / "chunks")
    target = tmp_path / "model.gguf"
    target.write_bytes(WHOLE[:-1])

    with pytest.raises(LLMError, match=f"has {len(WHOLE) - 1} bytes but {len(WHOLE)} were expected"):
        verify(target, source)


def test_a_recorded_check_spares_a_later_process_the_hashing(tmp_path, monkeypatch):
    source = chunk_set(tmp_path / "chunks")
    target = tmp_path / "model.gguf"
    ensure_model_file(source, target)
    monkeypatch.setattr(model_file, "_verified", set())  # a later process
    hashed: list[Path] = []
    monkeypatch.setattr(model_file, "_sha256_of", lambda path: hashed.append(path) or "unused")

    verify(target, source)

    assert hashed == []


def test_a_model_file_changed_since_its_check_is_hashed_again(tmp_path):
    source = chunk_set(tmp_path / "chunks")
    target = tmp_path / "model.gguf"
    ensure_model_file(source, target)
    stat = target.stat()
    target.write_bytes(WHOLE.replace(b"tail", b"TAIL"))
    os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))

    with pytest.raises(LLMError, match="has sha256"):
        verify(target, source)


def test_the_check_record_holds_size_mtime_and_checksum(tmp_path):
    source = chunk_set(tmp_path / "chunks")
    target = tmp_path / "model.gguf"

    ensure_model_file(source, target)

    stat = target.stat()
    assert json.loads((tmp_path / "model.gguf.verified.json").read_text()) == {
        "size": len(WHOLE),
        "mtime_ns": stat.st_mtime_ns,
        "sha256": source.sha256,
    }


def test_the_installed_chunk_packages_are_found_in_order():
    if not model_file.chunk_packages_installed():
        pytest.skip("the `local` extra is not installed")

    source = model_file.packaged_source()

    assert source is not None
    assert [chunk.name for chunk in source.chunks] == [f"part{n:02d}.bin" for n in range(1, 23)]
    assert sum(chunk.stat().st_size for chunk in source.chunks) == model_file.MODEL_SIZE
