from pathlib import Path

import pytest

from agents.llm import EmbeddedLLM, LLMError, LLMNotConfiguredError, ScriptedLLM, require_llm, select_llm
from agents.llm.model_file import MODEL_FILENAME, ModelSource
from agents.llm.openai_compat import OpenAICompatLLM

SOURCE = ModelSource(chunks=(Path("/nowhere/part01.bin"),), size=3, sha256="0" * 64)


def select(environ, data_dir=Path("/data"), *, llama=True, source: ModelSource | None = SOURCE):
    return select_llm(environ, data_dir, llama_cpp_available=lambda: llama, model_source=lambda: source)


def test_none_disables_the_llm_even_when_a_key_is_set():
    assert select({"PLANNER_MCP_LLM": "none", "OPENAI_API_KEY": "sk-x"}) is None


def test_an_invalid_choice_names_the_valid_ones():
    with pytest.raises(LLMError) as caught:
        select({"PLANNER_MCP_LLM": "anthropic"})

    assert str(caught.value) == (
        "PLANNER_MCP_LLM='anthropic' is not a valid choice; use one of openai, local, none, auto "
        "(or unset it for auto)."
    )


def test_auto_prefers_a_configured_server_over_the_embedded_model():
    llm = select({"OPENAI_API_KEY": "sk-x", "PLANNER_MCP_MODEL": "gpt-4.1-mini"})

    assert isinstance(llm, OpenAICompatLLM)
    assert llm.name == "openai:gpt-4.1-mini"
    assert llm.base_url == "https://api.openai.com/v1"


def test_auto_uses_a_keyless_local_server_when_only_a_base_url_is_set():
    llm = select({"OPENAI_BASE_URL": "http://localhost:11434/v1"})

    assert isinstance(llm, OpenAICompatLLM)
    assert llm.base_url == "http://localhost:11434/v1"
    assert llm.config.api_key is None


def test_auto_falls_back_to_the_packaged_embedded_model(tmp_path):
    llm = select({}, tmp_path)

    assert isinstance(llm, EmbeddedLLM)
    assert (llm.name, llm.model_path, llm.source) == (
        "local:qwen2.5-coder-1.5b",
        tmp_path / "models" / MODEL_FILENAME,
        SOURCE,
    )


def test_auto_uses_the_users_own_model_file_without_the_chunk_packages():
    llm = select({"PLANNER_MCP_MODEL_PATH": "/models/phi-4-mini.gguf"}, source=None)

    assert isinstance(llm, EmbeddedLLM)
    assert (llm.name, llm.model_path, llm.source) == ("local:phi-4-mini", Path("/models/phi-4-mini.gguf"), None)


def test_auto_without_a_server_or_a_model_selects_nothing():
    assert select({}, source=None) is None


def test_auto_without_llama_cpp_selects_nothing_even_with_the_chunks():
    assert select({}, llama=False) is None


def test_explicit_openai_without_key_or_url_says_how_to_configure():
    with pytest.raises(LLMNotConfiguredError, match="needs OPENAI_API_KEY or OPENAI_BASE_URL"):
        select({"PLANNER_MCP_LLM": "openai"})


def test_explicit_local_wins_over_a_configured_server():
    llm = select({"PLANNER_MCP_LLM": "local", "OPENAI_API_KEY": "sk-x"})

    assert isinstance(llm, EmbeddedLLM)


def test_explicit_local_without_llama_cpp_says_to_install_the_extra():
    with pytest.raises(LLMNotConfiguredError, match=r"run `uv sync --extra local`"):
        select({"PLANNER_MCP_LLM": "local"}, llama=False)


def test_explicit_local_without_any_model_says_where_to_get_one():
    with pytest.raises(LLMNotConfiguredError, match="PLANNER_MCP_MODEL_PATH"):
        select({"PLANNER_MCP_LLM": "local"}, source=None)


def test_the_choice_ignores_case_and_whitespace():
    assert isinstance(select({"PLANNER_MCP_LLM": " OpenAI ", "OPENAI_API_KEY": "sk-x"}), OpenAICompatLLM)


def test_require_llm_passes_an_llm_through():
    llm = ScriptedLLM([])

    assert require_llm(llm) is llm


def test_require_llm_without_one_explains_how_to_configure():
    with pytest.raises(LLMNotConfiguredError) as caught:
        require_llm(None, purpose="Planning")

    assert str(caught.value).startswith("Planning needs an LLM, but none is configured. Configure an LLM")
