"""Running one step: resolve its inputs, call the tool or the agent, bound it in time, retry
transient tool failures with backoff, and turn every failure into a structured outcome (never a crash).

Retry budgets, one layer each (no layer multiplies another's):
- a tool's transient failure (TransientToolError): the step is tried `retries` more times;
- an LLM's transient failure: retried inside the LLM call (agents.llm.openai_compat), whose attempts
  follow the step's deadline; when it still fails the step fails, naming the LLM server;
- Flyte's task retries (planning.flyte_env) only cover a lost worker, and a retried run starts from
  the stored outcomes, so no succeeded step runs again.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import anyio
from pydantic import BaseModel, JsonValue, ValidationError

from planning.catalog import AgentSpec, Catalog, CatalogError, format_validation_error
from planning.errors import LLMError, LLMNotConfiguredError, LLMTransientError
from planning.plan import Step, UnresolvedReferenceError
from planning.records import StepError, StepErrorKind, StepOutcome, StepStatus, Usage
from tools.errors import ToolError, TransientToolError

logger = logging.getLogger(__name__)


class AgentResult(BaseModel):
    """What a specialist agent returns for an agent step."""

    value: JsonValue
    summary: str
    usage: Usage = Usage()
    details: JsonValue = None  # the last tool result, when the agent's `finish` made the value of it


class AgentFailedError(ToolError):
    """An agent could not complete its task within its rounds; the message carries the last errors,
    `usage` what its LLM calls cost and `details` the last failed result (a failed program's run)."""

    def __init__(self, message: str, usage: Usage, details: JsonValue = None) -> None:
        super().__init__(message, details)
        self.usage = usage


RunAgent = Callable[[AgentSpec, str, dict[int, JsonValue]], Awaitable[AgentResult]]


async def _no_llm(agent: AgentSpec, task: str, inputs: dict[int, JsonValue]) -> AgentResult:
    raise LLMNotConfiguredError(f"The {agent.name!r} agent step needs an LLM and none is configured.")


@dataclass
class StepRunner:
    """Runs steps of plans against a catalog, with an optional agent runner (needs an LLM)."""

    catalog: Catalog
    run_agent: RunAgent | None = None  # None: no LLM, agent steps fail with how to configure one
    retries: int = 2
    retry_base_s: float = 0.5
    sleep: Callable[[float], Awaitable[None]] = field(default=anyio.sleep)

    async def __call__(self, step: Step, inputs: dict[int, JsonValue]) -> StepOutcome:
        try:
            agent = await self.catalog.revived(step.agent)  # a server that failed to start: tried again
        except CatalogError as exc:  # a stored plan whose agent has since left the catalog
            return _failed("invalid_args", str(exc), 0)
        if agent.unavailable:  # e.g. an MCP server that failed to start: its steps fail with why
            return _failed("tool_error", agent.unavailable, 1)
        timeout = step.timeout_s or agent.timeout_s
        attempt = 0
        while True:
            attempt += 1
            try:
                # Our own deadline, told apart from a TimeoutError a tool might raise itself.
                outcome: StepOutcome | None = None
                with anyio.move_on_after(timeout):
                    outcome = await self._attempt(step, agent, inputs)
                if outcome is None:
                    return _failed("timeout", f"the step took longer than its limit of {timeout:g} s", attempt)
                return outcome.model_copy(update={"attempts": attempt})
            except TransientToolError as exc:
                if attempt > self.retries:
                    return _failed("transient", f"{exc} (gave up after {attempt} attempts; try again later)", attempt)
                delay = self.retry_base_s * 2 ** (attempt - 1) * random.uniform(0.5, 1.5)
                logger.warning("step %s: transient failure (%s); retry %d in %.2f s", step.id, exc, attempt, delay)
                await self.sleep(delay)
            except ValidationError as exc:
                lines = format_validation_error(exc, "args")
                return _failed("invalid_args", f"{step.tool}: {'; '.join(lines)}", attempt)
            except UnresolvedReferenceError as exc:
                return _failed("invalid_args", str(exc), attempt)
            except AgentFailedError as exc:
                return _failed("tool_error", str(exc), attempt, exc.usage, exc.details)
            except ToolError as exc:  # also a code step whose program failed: `details` holds its run
                return _failed("tool_error", str(exc), attempt, details=exc.details)
            except LLMTransientError as exc:  # already retried within the LLM's budget
                return _failed("transient", str(exc), attempt, exc.usage)
            except LLMError as exc:
                return _failed("llm_error", str(exc), attempt, exc.usage)

    async def _attempt(self, step: Step, agent: AgentSpec, inputs: dict[int, JsonValue]) -> StepOutcome:
        if step.tool is not None:
            args = step.resolved_args(inputs)
            assert isinstance(args, dict)
            raw = await agent.tool(step.tool).call(args)
            if agent.finish is None:
                return StepOutcome(status=StepStatus.SUCCEEDED, result=raw)
            # The same value as an agent step of this agent gets (e.g. a program's `result`); a
            # ToolError here (a failed program) fails the step with `raw` kept as its details.
            return StepOutcome(status=StepStatus.SUCCEEDED, result=agent.finish(raw), details=raw)
        task = step.resolved_task(inputs)
        result = await (self.run_agent or _no_llm)(agent, task, inputs)
        return StepOutcome(
            status=StepStatus.SUCCEEDED,
            result=result.value,
            summary=result.summary,
            usage=result.usage,
            details=result.details,
        )


def _failed(
    kind: StepErrorKind, message: str, attempts: int, usage: Usage | None = None, details: JsonValue = None
) -> StepOutcome:
    return StepOutcome(
        status=StepStatus.FAILED,
        error=StepError(kind=kind, message=message),
        attempts=attempts,
        usage=usage or Usage(),
        details=details,
    )
