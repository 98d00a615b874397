"""Pick the LLM from the environment: an OpenAI-compatible server, the embedded model, or none."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from pathlib import Path

from agents.llm.embedded import EmbeddedLLM, llama_cpp_installed
from agents.llm.errors import LLMError, LLMNotConfiguredError
from agents.llm.model_file import ModelSource, packaged_source
from agents.llm.protocol import LLM

log = logging.getLogger(__name__)

CHOICES = ("openai", "local", "none", "auto")


def select_llm(
    environ: Mapping[str, str],
    data_dir: Path,
    *,
    llama_cpp_available: Callable[[], bool] = llama_cpp_installed,
    model_source: Callable[[], ModelSource | None] = packaged_source,
) -> LLM | None:
    """The LLM that `PLANNER_MCP_LLM` asks for: `openai`, `local`, `none`, or `auto` (also when unset).

    `auto` picks an OpenAI-compatible server when `OPENAI_API_KEY` or `OPENAI_BASE_URL` is set,
    else the embedded model when llama-cpp-python and a model (`PLANNER_MCP_MODEL_PATH` or the
    packaged one) are installed, else None: plans made only of tool steps still run. Nothing is
    loaded here. The keyword hooks replace the installation checks (tests).
    """
    choice = environ.get("PLANNER_MCP_LLM", "").strip().lower() or "auto"
    if choice not in CHOICES:
        raise LLMError(
            f"PLANNER_MCP_LLM={environ['PLANNER_MCP_LLM']!r} is not a valid choice; "
            f"use one of {', '.join(CHOICES)} (or unset it for auto)."
        )
    has_server = any(environ.get(name, "").strip() for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL"))
    has_own_model = bool(environ.get("PLANNER_MCP_MODEL_PATH", "").strip())
    if choice == "none":
        return None
    if choice == "openai" or (choice == "auto" and has_server):
        if not has_server:
            raise LLMNotConfiguredError("PLANNER_MCP_LLM=openai needs OPENAI_API_KEY or OPENAI_BASE_URL.")
        from agents.llm.openai_compat import OpenAICompatLLM, OpenAIConfig  # the SDK is slow to import

        llm = OpenAICompatLLM(OpenAIConfig.from_env(environ))
        log.info("LLM: %s at %s", llm.name, llm.base_url)
        return llm
    if choice == "local":
        if not llama_cpp_available():
            raise LLMNotConfiguredError("PLANNER_MCP_LLM=local needs llama-cpp-python: run `uv sync --extra local`.")
        source = None if has_own_model else model_source()
        if source is None and not has_own_model:
            raise LLMNotConfiguredError(
                "PLANNER_MCP_LLM=local needs a model: run `uv sync --extra local` for the packaged one, "
                "or set PLANNER_MCP_MODEL_PATH to a GGUF file."
            )
        return _embedded(environ, data_dir, source)
    if llama_cpp_available():
        source = None if has_own_model else model_source()
        if has_own_model or source is not None:
            return _embedded(environ, data_dir, source)
    log.info("LLM: none configured; only plans made of tool steps can run")
    return None


def require_llm(llm: LLM | None, *, purpose: str = "This request") -> LLM:
    """`llm`, or LLMNotConfiguredError (saying how to configure one) when there is none."""
    if llm is None:
        raise LLMNotConfiguredError(f"{purpose} needs an LLM, but none is configured.")
    return llm


def _embedded(environ: Mapping[str, str], data_dir: Path, source: ModelSource | None) -> EmbeddedLLM:
    llm = EmbeddedLLM.from_env(environ, data_dir, source=source)
    log.info("LLM: %s from %s", llm.name, llm.model_path)
    return llm
