import hashlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Literal

import pytest
from pydantic import BaseModel, Field

from agents.llm import EmbeddedLLM, LLMError, LLMNotConfiguredError, Message
from agents.llm import embedded as embedded_module
from agents.llm.embedded import grammar_schema, llama_cpp_installed
from agents.llm.model_file import MODEL_FILENAME, ModelSource, chunk_packages_installed

REPO_ROOT = Path(__file__).resolve().parents[2]
needs_llama_cpp = pytest.mark.skipif(not llama_cpp_installed(), reason="llama-cpp-python is not installed")


class Step(BaseModel):
    id: int
    agent: Literal["math", "string"]
    task: str | None = None
    depends_on: list[int] = []


class Plan(BaseModel):
    steps: list[Step]
    fallback: Step | None = None


class Tree(BaseModel):
    name: str
    children: list["Tree"] = []


def fake_source(tmp_path: Path) -> ModelSource:
    chunk = tmp_path / "part01.bin"
    chunk.write_bytes(b"tiny model")
    return ModelSource(chunks=(chunk,), size=10, sha256=hashlib.sha256(b"tiny model").hexdigest())


def test_the_packaged_model_is_built_under_the_data_dir_on_first_use(tmp_path):
    llm = EmbeddedLLM.from_env({}, tmp_path / "data", source=fake_source(tmp_path))

    path = llm.prepare_file()

    assert path == tmp_path / "data" / "models" / MODEL_FILENAME
    assert path.read_bytes() == b"tiny model"
    assert (llm.name, llm.n_threads, llm.n_ctx) == ("local:qwen2.5-coder-1.5b", 1, 8192)


def test_threads_and_context_come_from_the_environment(tmp_path):
    environ = {"PLANNER_MCP_LLM_THREADS": "4", "PLANNER_MCP_LLM_CONTEXT": "4096"}

    llm = EmbeddedLLM.from_env(environ, tmp_path, source=fake_source(tmp_path))

    assert (llm.n_threads, llm.n_ctx) == (4, 4096)


@pytest.mark.parametrize("value", ["0", "two", "-1"])
def test_a_bad_thread_count_names_the_variable(tmp_path, value):
    with pytest.raises(LLMError, match=f"PLANNER_MCP_LLM_THREADS={value!r} is not a positive whole number"):
        EmbeddedLLM.from_env({"PLANNER_MCP_LLM_THREADS": value}, tmp_path, source=fake_source(tmp_path))


def test_a_users_own_model_file_is_used_as_it_is(tmp_path):
    own = tmp_path / "my-model.gguf"
    own.write_bytes(b"anything")

    llm = EmbeddedLLM.from_env({"PLANNER_MCP_MODEL_PATH": str(own)}, tmp_path / "data")

    assert (llm.name, llm.prepare_file(), llm.source) == ("local:my-model", own, None)


def test_a_missing_own_model_file_says_what_to_set(tmp_path):
    llm = EmbeddedLLM.from_env({"PLANNER_MCP_MODEL_PATH": str(tmp_path / "gone.gguf")}, tmp_path)

    with pytest.raises(LLMError) as caught:
        llm.prepare_file()

    assert str(tmp_path / "gone.gguf") in str(caught.value)
    assert "unset it to use the packaged model" in str(caught.value)


def test_without_the_chunk_packages_the_embedded_model_is_not_configured(tmp_path, monkeypatch):
    monkeypatch.setattr(embedded_module, "packaged_source", lambda: None)

    with pytest.raises(LLMNotConfiguredError, match="embedded model is not installed"):
        EmbeddedLLM.from_env({}, tmp_path)


def test_a_recursive_model_gets_an_inlined_root_schema():
    schema = grammar_schema(Tree)

    assert "$ref" not in schema
    assert schema["properties"]["children"]["items"] == {"$ref": "#/$defs/Tree"}
    assert schema["required"] == ["name"]


@needs_llama_cpp
@pytest.mark.parametrize(
    ("output", "rule"),
    [
        (Plan, "fallback ::= fallback-0 | null"),
        (Plan, "steps-item ::= Step"),
        (Tree, "children-item ::= Tree"),
    ],
    ids=["nested-optional", "nested-list", "recursive"],
)
def test_llama_cpp_turns_nested_and_recursive_schemas_into_grammars(output, rule):
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    grammar = json_schema_to_gbnf(json.dumps(grammar_schema(output)))

    assert rule in grammar.splitlines()
    assert any(line.startswith("root ::=") for line in grammar.splitlines())


class Search(BaseModel):
    query: str = Field(min_length=1, max_length=500)
    words: list[str] = Field(min_length=10, max_length=50)


def test_length_bounds_are_left_to_validation_not_spelled_into_the_grammar():
    properties = grammar_schema(Search)["properties"]

    assert properties["query"] == {"minLength": 1, "title": "Query", "type": "string"}
    assert properties["words"] == {"items": {"type": "string"}, "title": "Words", "type": "array"}


@pytest.mark.model
@needs_llama_cpp
def test_llama_cpp_accepts_the_grammars_of_the_planner_and_every_agent(pytestconfig, tmp_path):
    """llama.cpp parses a grammar only when sampling starts (LlamaGrammar.from_string keeps the
    text), so the model's vocabulary is loaded (vocab_only) to check every reply schema's grammar."""
    import llama_cpp
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    from agents.catalog import build_catalog
    from agents.schemas import plan_draft_model, turn_model
    from planning.settings import Settings

    if not (os.environ.get("PLANNER_MCP_MODEL_PATH") or chunk_packages_installed()):
        pytest.skip("no model: install the `local` extra or set PLANNER_MCP_MODEL_PATH")
    data_dir = pytestconfig.cache.mkdir("planner-mcp-model")
    model_file = EmbeddedLLM.from_env(os.environ, data_dir).prepare_file()
    model = llama_cpp.Llama(str(model_file), vocab_only=True, verbose=False)
    vocab = llama_cpp.llama_model_get_vocab(model._model.model)  # pyright: ignore[reportPrivateUsage]
    assert vocab is not None
    catalog = build_catalog(Settings(home=tmp_path))

    refused = []
    for name, output in [("planner", plan_draft_model(catalog))] + [
        (agent.name, turn_model(agent)) for agent in catalog.agents.values()
    ]:
        grammar = json_schema_to_gbnf(json.dumps(grammar_schema(output)))
        sampler = llama_cpp.llama_sampler_init_grammar(vocab, grammar.encode(), b"root")
        if sampler:
            llama_cpp.llama_sampler_free(sampler)
        else:
            refused.append(name)
    assert refused == []


@needs_llama_cpp
def test_the_grammar_has_the_model_write_keys_in_field_order(tmp_path):
    # A planner step's tool is chosen before its arguments; in alphabetical order the model wrote
    # "args" first and the arguments it had written then decided the tool.
    llm = EmbeddedLLM(tmp_path / "model.gguf")
    grammar = llm._grammar(grammar_schema(Plan)).splitlines()

    step = next(line for line in grammar if line.startswith("Step ::="))
    assert step.index("Step-id-kv") < step.index("Step-agent-kv") < step.index("Step-task-kv")


# The real model runs in a child process: a crash inside llama.cpp then fails this test instead of
# killing the test session, and the child's stdout can be checked byte for byte. While the model
# loads and answers, a thread writes markers to stdout, as an MCP stdio server writes messages:
# every marker must arrive (llama.cpp must not redirect or write to stdout).
CHILD = """
import json, logging, os, sys, threading
from pathlib import Path
import anyio
from pydantic import BaseModel
from agents.llm import EmbeddedLLM, Message

class Answer(BaseModel):
    answer: int

async def ask():
    llm = EmbeddedLLM.from_env(os.environ, Path(sys.argv[1]))
    messages = [
        Message(role="system", content="You are a calculator."),
        Message(role="user", content="What is 2+3?"),
    ]
    return llm.name, await llm.complete(messages, Answer, role="math")

logging.basicConfig(level=logging.DEBUG, stream=sys.stderr)
stop = threading.Event()
written = [0]

def mark():
    while not stop.wait(0.002):
        os.write(1, b"marker\\n")
        written[0] += 1

marker = threading.Thread(target=mark)
marker.start()
try:
    name, completion = anyio.run(ask)
finally:
    stop.set()
    marker.join()
result = {"written": written[0], "name": name, "completion": completion.model_dump(mode="json")}
os.write(1, (json.dumps(result) + "\\n").encode())
"""

CRASH_HINT = (
    " (a crash inside llama.cpp; a llama-cpp-python built with GGML_NATIVE on a CPU that reports AMX "
    "crashes like this in VMs without usable AMX: rebuild it with "
    "CMAKE_ARGS='-DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON')"
)


@pytest.mark.model
@needs_llama_cpp
def test_the_real_embedded_model_answers_with_a_validated_object_and_a_clean_stdout(pytestconfig):
    if not (os.environ.get("PLANNER_MCP_MODEL_PATH") or chunk_packages_installed()):
        pytest.skip("no model: install the `local` extra or set PLANNER_MCP_MODEL_PATH")
    data_dir = pytestconfig.cache.mkdir("planner-mcp-model")  # the 1.1 GB file is reused across runs

    child = subprocess.run(
        [sys.executable, "-X", "faulthandler", "-c", CHILD, str(data_dir)],
        cwd=REPO_ROOT,
        capture_output=True,
        timeout=600,
        check=False,
    )

    hint = CRASH_HINT if child.returncode == -signal.SIGSEGV else ""
    assert child.returncode == 0, (
        f"the model child exited with {child.returncode}{hint}; stderr tail:\n{child.stderr.decode()[-3000:]}"
    )
    *markers, last = child.stdout.decode().splitlines()
    result = json.loads(last)
    assert set(markers) <= {"marker"}
    assert len(markers) == result["written"] > 0
    assert result["completion"]["value"] == {"answer": 5}
    usage = result["completion"]["usage"]
    assert usage["calls"] == 1
    assert usage["prompt_tokens"] > 0 and usage["completion_tokens"] > 0


@needs_llama_cpp
@pytest.mark.anyio
async def test_a_file_that_is_not_a_model_is_refused_with_the_setting_to_fix(tmp_path):
    junk = tmp_path / "notes.gguf"
    junk.write_bytes(b"these are not model weights")
    llm = EmbeddedLLM.from_env({"PLANNER_MCP_MODEL_PATH": str(junk)}, tmp_path)

    with pytest.raises(LLMError) as caught:
        await llm.complete([Message(role="user", content="hi")], Tree)

    assert f"llama.cpp could not load {str(junk)!r}" in str(caught.value)
    assert "PLANNER_MCP_MODEL_PATH" in str(caught.value)
