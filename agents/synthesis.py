"""The final answer of a run: stated from the final results, or written by the LLM when it adds something.

One LLM call per request is the floor: a run of tool steps whose final results are numbers or short
texts is answered from them (`planning.answer`), with no synthesis call. The LLM writes the answer
only for agent steps, structured or long results, or a request that asks for prose; its answer is
kept only if it states every final result as a whole token.
"""

from __future__ import annotations

import logging

from pydantic import BaseModel, Field

from agents.llm import LLM, LLMError, Message
from agents.prompts import data_block, data_text
from planning.answer import RunAnswer, needs_writing, states_results, summarize
from planning.records import RunRecord, StepStatus

logger = logging.getLogger(__name__)

SYSTEM_PROMPT = (
    "Answer the user's request in one or two sentences from the results of the steps that were run for it. "
    "State the final result exactly as given; do not compute anything yourself."
)


class Answer(BaseModel):
    answer: str = Field(description="The answer to the user's request, in one or two sentences.")


class Synthesizer:
    """Writes a run's answer; without an LLM (or a request) it states the final steps' results."""

    def __init__(self, llm: LLM | None) -> None:
        self.llm = llm

    async def __call__(self, record: RunRecord) -> RunAnswer:
        stated = RunAnswer(text=summarize(record), source="results")
        succeeded = {s.id: s.result for s in record.steps if s.status is StepStatus.SUCCEEDED}
        if self.llm is None or not record.request or not succeeded or not needs_writing(record):
            return stated
        messages = [
            # The system prompt comes first and never changes: the embedded model's prompt cache keeps it.
            Message(role="system", content=SYSTEM_PROMPT),
            Message(
                role="user",
                content=f"{data_block(succeeded)}\n<data final-result>\n{data_text(stated.text[:2000])}\n</data>\n\n"
                f"Request: {record.request}\nAnswer:",
            ),
        ]
        try:
            completion = await self.llm.complete(messages, Answer, role="synthesis")
        except LLMError as exc:
            logger.warning("synthesis failed (%s); stating the results instead", exc)
            cost = exc.usage or stated.usage  # failed calls count too
            return stated.model_copy(update={"usage": cost})
        answer = completion.value.answer.strip()
        # A small model may garble numbers: an answer that misses a final result is not used.
        missing = states_results(answer, record)
        if missing or not answer:
            logger.info("the written answer %r misses the result of step(s) %s; stating the results", answer, missing)
            return stated.model_copy(update={"usage": completion.usage})
        return RunAnswer(text=answer, source="llm", usage=completion.usage)
