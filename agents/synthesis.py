"""The final answer of a run: written by the LLM from the step results, or deterministically."""

from __future__ import annotations

import logging

from pydantic import BaseModel, Field

from agents.llm import LLM, LLMError, Message, Usage
from agents.prompts import data_block
from planning.answer import final_steps, summarize
from planning.records import RunRecord, StepStatus

logger = logging.getLogger(__name__)


class Answer(BaseModel):
    answer: str = Field(description="The answer to the user's request, in one or two sentences.")


class Synthesizer:
    """Writes a run's answer; without an LLM (or a request) it summarizes the final steps' results."""

    def __init__(self, llm: LLM | None) -> None:
        self.llm = llm

    async def __call__(self, record: RunRecord) -> tuple[str, Usage]:
        fallback = summarize(record)
        succeeded = {s.id: s.result for s in record.steps if s.status is StepStatus.SUCCEEDED}
        if self.llm is None or not record.request or not succeeded:
            return fallback, Usage()
        finals = ", ".join(str(i) for i in final_steps(record))
        messages = [
            Message(
                role="system",
                content="Answer the user's request from the step results. Use the numbers and facts exactly as "
                f"the results give them; the final step(s) {finals} hold the requested result. Be brief.",
            ),
            Message(role="user", content=f"{data_block(succeeded)}\n\nRequest: {record.request}"),
        ]
        try:
            completion = await self.llm.complete(messages, Answer, role="synthesis")
        except LLMError as exc:
            logger.warning("synthesis failed (%s); using the deterministic summary", exc)
            return fallback, Usage()
        return completion.value.answer, completion.usage
