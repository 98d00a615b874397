"""The LLM layer: one small protocol (`LLM.complete` -> validated pydantic object) and its implementations.

OpenAICompatLLM   any OpenAI-compatible chat-completions server (OpenAI, Ollama, vLLM, LM Studio);
                  import it from agents.llm.openai_compat (the OpenAI SDK costs ~1 s to import)
EmbeddedLLM       a GGUF model in-process via llama.cpp (the `local` extra)
ScriptedLLM       answers written by a test or demo
select_llm        picks one from the environment (PLANNER_MCP_LLM)
"""

from agents.llm.embedded import EmbeddedLLM
from agents.llm.errors import LLMError, LLMNotConfiguredError, LLMOutputError, LLMTransientError
from agents.llm.protocol import LLM, Completion, Message, Usage
from agents.llm.scripted import ScriptedCall, ScriptedLLM, ScriptExhaustedError
from agents.llm.select import require_llm, select_llm

__all__ = [
    "LLM",
    "Completion",
    "EmbeddedLLM",
    "LLMError",
    "LLMNotConfiguredError",
    "LLMOutputError",
    "LLMTransientError",
    "Message",
    "ScriptExhaustedError",
    "ScriptedCall",
    "ScriptedLLM",
    "Usage",
    "require_llm",
    "select_llm",
]
