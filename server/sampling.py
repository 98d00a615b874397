"""The client's own model as an LLM, through MCP sampling: how `plan` works on a server without one.

Only handshake-era connections (protocol 2025-11-25 and earlier) whose client declared the sampling
capability can be asked; the 2026 era deprecates sampling and carries it only as a multi-round
input request, which a planner's repair loop cannot drive. The model is not schema-constrained
here, so the reply format goes into the system prompt and a bad reply gets one repair round.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Sequence
from typing import Any

from mcp.server.mcpserver import Context
from mcp.shared.exceptions import MCPDeprecationWarning, MCPError
from mcp.types import SamplingMessage, TextContent
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS

from agents.llm import Completion, LLMError, Message, Usage
from agents.llm.protocol import Generation, T
from agents.llm.structured import complete_with_repair, with_schema_instructions

logger = logging.getLogger(__name__)

MAX_TOKENS = 4096


class SamplingLLM:
    """An `LLM` answered by the MCP client's model (sampling/createMessage) for one tool call."""

    name = "client model (MCP sampling)"

    def __init__(self, ctx: Context[Any, Any], *, max_tokens: int = MAX_TOKENS) -> None:
        self._ctx = ctx
        self._max_tokens = max_tokens

    async def complete(
        self,
        messages: Sequence[Message],
        output: type[T],
        *,
        role: str = "default",
        generation: Generation | None = None,
    ) -> Completion[T]:
        """`generation`: its repair rounds apply; the client's model picks its own sampling."""
        rounds = generation.repair_rounds if generation is not None else None
        return await complete_with_repair(
            self._call, with_schema_instructions(messages, output), output, repair_rounds=rounds
        )

    async def _call(self, messages: Sequence[Message]) -> tuple[str, Usage]:
        system = "\n\n".join(m.content for m in messages if m.role == "system") or None
        conversation = [
            SamplingMessage(role=m.role, content=TextContent(type="text", text=m.content))
            for m in messages
            if m.role != "system"
        ]
        started = time.monotonic()
        with warnings.catch_warnings():
            # Deliberate: sampling is deprecated in the 2026 era but is what handshake-era clients offer.
            warnings.simplefilter("ignore", MCPDeprecationWarning)
            pending = self._ctx.session.create_message(
                conversation,
                max_tokens=self._max_tokens,
                system_prompt=system,
                related_request_id=self._ctx.request_context.request_id,
            )
        try:
            result = await pending
        except MCPError as exc:
            raise LLMError(
                f"the client's model did not answer the sampling request ({exc.error.message}); allow sampling "
                "for this server in the client, or configure an LLM for the server"
            ) from None
        text = result.content.text if isinstance(result.content, TextContent) else ""
        logger.info("sampled the client's model %r (%d characters)", result.model, len(text))
        return text, Usage(calls=1, latency_s=time.monotonic() - started)


def client_sampling(ctx: Context[Any, Any]) -> SamplingLLM | None:
    """The client's model, if this connection can be asked for it."""
    capabilities = ctx.client_capabilities
    if ctx.protocol_version not in HANDSHAKE_PROTOCOL_VERSIONS or capabilities is None or not capabilities.sampling:
        return None
    return SamplingLLM(ctx)
