"""The final answer of a run: written by the LLM from the step results, or deterministically."""

from __future__ import annotations

import logging

from pydantic import BaseModel, Field

from agents.llm import LLM, LLMError, Message, Usage
from agents.prompts import data_block
from planning.answer import final_steps, summarize
from planning.plan import result_text
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
        final_ids = set(final_steps(record))
        finals = [s for s in record.steps if s.id in final_ids and s.status is StepStatus.SUCCEEDED]
        messages = [
            Message(
                role="system",
                content="Answer the user's request in one or two sentences from the results of the steps that were "
                "run for it. State the final result exactly as given; do not compute anything yourself.",
            ),
            Message(
                role="user",
                content=f"{data_block(succeeded)}\n<data final-result>\n{fallback[:2000]}\n</data>\n\n"
                f"Request: {record.request}\nAnswer:",
            ),
        ]
        try:
            completion = await self.llm.complete(messages, Answer, role="synthesis")
        except LLMError as exc:
            logger.warning("synthesis failed (%s); using the deterministic summary", exc)
            return fallback, Usage()
        answer = completion.value.answer
        # A small model may garble numbers: an answer that misses a final result is not used.
        missing = [s.id for s in finals if len(text := result_text(s.result)) <= 200 and text not in answer]
        if missing or not answer.strip():
            logger.warning("the written answer %r misses the result of step(s) %s; using the summary", answer, missing)
            return fallback, completion.usage
        return answer, completion.usage
