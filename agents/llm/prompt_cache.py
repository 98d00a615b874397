"""Evaluated prompt prefixes of the embedded model, kept in RAM and in the data directory.

The planner's system prompt is ~1,400 tokens: at one thread on a 2-core machine llama.cpp evaluates
it in ~50 s, and llama-cpp-python only reuses the prefix of the *last* prompt, so any other prompt in
between (synthesis, a specialist) made every request pay it again. Here each static prefix (a
role's system message, chat-formatted) is evaluated once; its llama.cpp state (the KV cache of
those tokens, ~28 KB a token for the packaged model) is kept in a bounded LRU in RAM and written
to `<data dir>/prompt-cache/`, so a new process restores it in milliseconds instead.

A file is used only when its header names this model, llama.cpp build, context size and exactly
these prefix tokens, and its payload matches the sha256 in the header; anything else is ignored
and rebuilt. llama-cpp-python's own LlamaRAMCache is not used: its states carry a copy of the
logits buffer (n_batch x vocabulary floats, ~311 MB for this model) on every save.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import logging
import os
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

log = logging.getLogger(__name__)

FORMAT = 1
DEFAULT_RAM_BYTES = 512 * 2**20
DEFAULT_MAX_FILES = 16

Source = Literal["warm", "ram", "disk", "evaluated"]


@dataclass(frozen=True)
class PrefixState:
    tokens: tuple[int, ...]
    data: bytes  # llama_state_get_data right after evaluating exactly `tokens`


class PromptCache:
    """Restores a prompt's static prefix into a llama.cpp context before a generation.

    Not thread-safe: the caller holds the model's lock (a context serves one call at a time).
    """

    def __init__(
        self,
        directory: Path | None,
        model_id: str,
        *,
        ram_bytes: int = DEFAULT_RAM_BYTES,
        max_files: int = DEFAULT_MAX_FILES,
    ) -> None:
        self.directory = directory
        self.model_id = model_id
        self.ram_bytes = ram_bytes
        self.max_files = max_files
        self._states: OrderedDict[str, PrefixState] = OrderedDict()

    def prepare(self, llama: Any, tokens: Sequence[int], prefix_len: int) -> Source:
        """Make `llama`'s context hold the evaluated first `prefix_len` of `tokens`; llama.cpp's
        own prefix matching then evaluates only the rest. Returns where the prefix came from."""
        prefix = tuple(tokens[:prefix_len])
        if prefix_len == 0 or _shared(llama, prefix) >= prefix_len:
            return "warm"
        key = self._key(prefix)
        source: Source = "ram"
        state = self._states.get(key)
        if state is None:
            state, source = self._read(key, prefix), "disk"
        if state is None or not _restore(llama, state):
            llama.reset()
            llama.eval(list(prefix))
            state, source = _capture(llama, prefix), "evaluated"
            self._write(key, state)
        self._remember(key, state)
        log.debug("prompt prefix of %d tokens: %s", prefix_len, source)
        return source

    def _key(self, prefix: tuple[int, ...]) -> str:
        digest = hashlib.sha256(self.model_id.encode())
        digest.update(_token_bytes(prefix))
        return digest.hexdigest()[:32]

    def _remember(self, key: str, state: PrefixState) -> None:
        self._states[key] = state
        self._states.move_to_end(key)
        while len(self._states) > 1 and sum(len(s.data) for s in self._states.values()) > self.ram_bytes:
            self._states.popitem(last=False)

    # -- files ------------------------------------------------------------------------------------

    def _path(self, key: str) -> Path | None:
        return self.directory / f"{key}.state" if self.directory is not None else None

    def _read(self, key: str, prefix: tuple[int, ...]) -> PrefixState | None:
        path = self._path(key)
        if path is None or not path.is_file():
            return None
        try:
            with path.open("rb") as file:
                header = json.loads(file.readline(4096))
                tokens = file.read(4 * len(prefix))
                data = file.read()
            valid = (
                header.get("format") == FORMAT
                and header.get("model") == self.model_id
                and tokens == _token_bytes(prefix)
                and header.get("sha256") == hashlib.sha256(data).hexdigest()
            )
        except (OSError, ValueError, AttributeError) as exc:
            log.info("ignoring unreadable prompt cache file %s (%s); rebuilding it", path, exc)
            return None
        if not valid:
            log.info("ignoring stale prompt cache file %s; rebuilding it", path)
            return None
        os.utime(path)  # recently used: pruned last
        return PrefixState(prefix, data)

    def _write(self, key: str, state: PrefixState) -> None:
        path = self._path(key)
        if path is None:
            return
        header = {"format": FORMAT, "model": self.model_id, "sha256": hashlib.sha256(state.data).hexdigest()}
        partial = path.with_suffix(f".{os.getpid()}.partial")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with partial.open("wb") as file:
                file.write(json.dumps(header).encode() + b"\n")
                file.write(_token_bytes(state.tokens))
                file.write(state.data)
            partial.replace(path)  # readers see a whole file or none
            self._prune(path.parent)
        except OSError as exc:  # a full or read-only disk costs speed, never the call
            log.warning("could not save the prompt cache to %s (%s); it is kept in memory only", path, exc)
            partial.unlink(missing_ok=True)

    def _prune(self, directory: Path) -> None:
        files = sorted(directory.glob("*.state"), key=lambda p: p.stat().st_mtime, reverse=True)
        for stale in files[self.max_files :]:
            stale.unlink(missing_ok=True)


def _token_bytes(tokens: Sequence[int]) -> bytes:
    return b"".join(int(t).to_bytes(4, "little", signed=True) for t in tokens)


def _shared(llama: Any, prefix: tuple[int, ...]) -> int:
    """How many of `prefix`'s tokens the context already holds, evaluated."""
    held = llama.input_ids[: min(llama.n_tokens, len(prefix))].tolist()
    shared = 0
    for have, want in zip(held, prefix, strict=False):
        if have != want:
            break
        shared += 1
    return shared


def _capture(llama: Any, prefix: tuple[int, ...]) -> PrefixState:
    import llama_cpp

    size = llama_cpp.llama_state_get_size(llama.ctx)
    buffer = (ctypes.c_uint8 * size)()
    written = llama_cpp.llama_state_get_data(llama.ctx, buffer, size)
    return PrefixState(prefix, bytes(buffer)[:written])


def _restore(llama: Any, state: PrefixState) -> bool:
    """Load a captured state; False (context reset) if llama.cpp refuses it."""
    import llama_cpp
    import numpy as np

    ids = np.zeros(llama.n_ctx(), dtype=np.intc)
    ids[: len(state.tokens)] = state.tokens
    try:
        # No logits are kept (a restored context evaluates again before it samples): one zero row
        # broadcasts over llama-cpp-python's logits buffer.
        llama.load_state(
            llama_cpp.LlamaState(
                input_ids=ids,
                scores=np.zeros((1, llama.n_vocab()), dtype=np.single),
                n_tokens=len(state.tokens),
                llama_state=state.data,
                llama_state_size=len(state.data),
                seed=llama._seed,
            )
        )
    except RuntimeError as exc:  # "Failed to set llama state data"
        log.info("llama.cpp refused a cached prompt state (%s); evaluating the prefix", exc)
        llama.reset()
        return False
    return True
