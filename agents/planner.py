"""The planner agent: a request in, a validated plan out, within a bounded time and token budget.

The model answers in a schema built from the catalog (agent and tool names are enumerations, so
constrained decoding cannot invent them; the step count is capped at the plan limit). The reply is
validated like any hand-written plan and every problem goes back to the model, quoted against the
values it wrote. Each repair round changes something: the problems, and the sampling temperature;
a reply that repeats an earlier one ends the rounds. A reply that repeats its own steps is cut
while it is generated and sent back as a problem; so is one cut at its token limit.

The system prompt depends only on the catalog (a prompt cache can keep it evaluated); everything
about the request comes after it.
"""

from __future__ import annotations

import json
import logging
import re
import time
from dataclasses import dataclass
from typing import Any

import anyio
from pydantic import BaseModel, ValidationError

from agents import plan_checks
from agents.llm import LLM, LLMError, LLMOutputError, Message, Usage
from agents.llm.protocol import Generation
from agents.prompts import describe_tool, describe_tools, summary
from agents.repetition import RepetitionGuard, complete_steps
from agents.schemas import plan_draft_model
from planning.catalog import AgentSpec, Catalog, ToolSpec
from planning.errors import UserFixableError
from planning.plan import Plan
from planning.validate import PlanLimits, PlanValidationError, Problem, parse_plan

log = logging.getLogger(__name__)

# Sampling per round: the first answer is the model's best guess; a repair that sees the same
# prompt at the same temperature tends to answer the same plan (measured: 3 identical rounds).
TEMPERATURES = (0.0, 0.4, 0.7)
# Above this many characters of tool documentation the system prompt lists tools by name and
# summary only, and the request's message carries full details for the tools it likely needs.
FULL_CATALOG_CHARS = 9_000
TOOLS_IN_PLAY = 8

# The worked example for catalogs with these tools: a domain no request of ours is about, with
# values that cannot be mistaken for the user's (small models copy examples; any of its texts in
# a plan is sent back as an error).
EXAMPLE_REQUEST = "Multiply 7 by 6, and count the words in 'alpha beta gamma', then add the two results"
EXAMPLE_PLAN = {
    "steps": [
        {"id": 1, "tool": "multiply", "agent": "math", "args": {"a": 7, "b": 6}},
        {"id": 2, "tool": "word_count", "agent": "string", "args": {"text": "alpha beta gamma"}},
        {"id": 3, "tool": "add", "agent": "math", "args": {"a": "$1", "b": "$2"}, "depends_on": [1, 2]},
    ],
}
_EXAMPLE_TEXT = "alpha beta gamma"
_PLACEHOLDER = "<value from the request>"
# For other catalogs, the format alone: one single ask (most requests are) and one chain.
FORMAT_SHOTS = (
    (
        "<one ask>",
        {
            "parts": ["<the ask>"],
            "steps": [{"id": 1, "tool": "<tool>", "agent": "<agent>", "args": {"<parameter>": _PLACEHOLDER}}],
        },
    ),
    (
        "<an ask, then one that uses its result>",
        {
            "parts": ["<the first ask>", "<the next, with its result>"],
            "steps": [
                {"id": 1, "tool": "<tool>", "agent": "<agent>", "args": {"<parameter>": _PLACEHOLDER}},
                {"id": 2, "tool": "<tool>", "agent": "<agent>", "args": {"<parameter>": "$1"}, "depends_on": [1]},
            ],
        },
    ),
)


class PlanningError(UserFixableError):
    """The planner could not produce a valid plan within its repair rounds or its time budget."""

    def __init__(
        self, request: str, problems: list[Problem], why: str = "after its repair rounds", usage: Usage | None = None
    ) -> None:
        self.problems = problems
        self.usage = usage or Usage()  # what the failed planning cost
        listed = "\n".join(f"- {p}" for p in problems[:20])
        super().__init__(
            f"the planner could not make a valid plan for {request[:200]!r} {why}:\n{listed}\n"
            "Rephrase the request more explicitly, use a stronger model (PLANNER_MCP_MODEL_PLANNER), "
            "or write the plan yourself (execute_plan with a plan)."
        )


class PlanResult(BaseModel):
    plan: Plan
    usage: Usage
    rounds: int
    parts: list[str] = []  # the model's outline of the request (its last reply's)


@dataclass(frozen=True)
class Example:
    shots: tuple[tuple[str, dict[str, Any]], ...]  # (request, plan)
    markers: tuple[str, ...]  # texts that betray a copied example
    # The reply names the request's parts before its steps: needed where only the format can be
    # shown (foreign catalogs: 20/32 → 24/32 on the accuracy benchmark), not where the worked
    # example shows how requests break into steps (built-in agents: 27/32 with parts, 31/32
    # without, and 17.6 s against 14.5 s per request).
    outline: bool


def worked_example(catalog: Catalog) -> Example:
    """The example for this catalog: the fixed one where its tools exist, else the format alone.

    An example made of the catalog's own tools was copied: a flight booking grew the example's
    hotel search (measured on the accuracy benchmark's foreign catalog); placeholders cannot be."""
    try:
        math, string = catalog.agents["math"], catalog.agents["string"]
        if {"multiply", "add"} <= set(math.tool_by_name) and "word_count" in string.tool_by_name:
            return Example(((EXAMPLE_REQUEST, EXAMPLE_PLAN),), (_EXAMPLE_TEXT,), outline=False)
    except KeyError:
        pass
    return Example(FORMAT_SHOTS, (_PLACEHOLDER,), outline=True)


def system_prompt(catalog: Catalog) -> str:
    """The static part of every planning prompt: depends on the catalog only."""
    full = sum(len(describe_tool(t)) for a in catalog.agents.values() for t in a.llm_tools) <= FULL_CATALOG_CHARS
    seen: set[str] = set()
    # Only agents whose LLM has tools it may call (a server that failed to start has none).
    agents = "\n".join(_describe_agent(agent, full, seen) for agent in catalog.agents.values() if agent.llm_tools)
    guidance = [
        "Use as few steps as the request needs; each step once. Copy values from the request exactly.",
        "Read each parameter's note: use the units, formats and allowed values it names (a duration in "
        "minutes stays in minutes).",
        "Keep the order the request states: 'subtract A from B' is B - A; 'the difference between the "
        "larger and the smaller' is larger - smaller.",
        "An optional parameter gets a value only when the request states one; otherwise null.",
        'Pass a result on with "$N" (N = step id) as a whole argument value; it keeps numbers as '
        'numbers. Inside longer text write ${N}. Any other "$" is plain text: "$10" is ten dollars.',
        '"depends_on" lists only the steps whose results the step uses; independent steps run in parallel.',
    ]
    if "code" in catalog.agents and catalog.agents["code"].llm_tools:
        guidance.append('For the code agent use a "task": it writes and runs the program itself.')
    example = worked_example(catalog)
    shots = "\n".join(f"Request: {request}\nPlan: {json.dumps(plan)}" for request, plan in example.shots)
    label = (
        "Examples (only to show the format; never copy their values)"
        if len(example.shots) > 1
        else "Example (only to show the format; never copy its values)"
    )
    shown = f"\n\n{label}:\n{shots}"
    details = "" if full else "\nDetails of the tools the request most likely needs come with the request."
    rules = "\n".join(f"- {line}" for line in guidance)
    return f"""You are a planner. Break the user's request into steps for these specialist agents:
{agents}{details}

{_format(example.outline)} Each step has:
- "id": 1, 2, 3, ... in order;
- EITHER "tool": one of the tools above, then the "agent" it is listed under and its "args" with
  exactly the parameters listed, when the request gives every argument (preferred: fast and exact)
  OR "tool": null, an "agent" and a "task": a short instruction in words when the agent must work
  out the arguments itself;
- "depends_on": the ids of the steps whose results it needs.
{rules}{shown}"""


def _format(outline: bool) -> str:
    if not outline:
        return 'Write a JSON plan: {"steps": [...]}.'
    return (
        'Write a JSON plan: {"parts": [...], "steps": [...]}.\n'
        '"parts": each separate thing the request asks for, in a few words (one part for a single ask).\n'
        '"steps": one step per part.'
    )


def _describe_agent(agent: AgentSpec, full: bool, seen: set[str]) -> str:
    if full:
        return f"- {agent.name}: {agent.description}\n" + describe_tools(agent, seen)
    tools = "; ".join(f"{t.name}: {summary(t)}" for t in agent.llm_tools)
    return f"- {agent.name}: {agent.description} Tools: {tools}"


def tools_in_play(catalog: Catalog, request: str, count: int = TOOLS_IN_PLAY) -> list[ToolSpec]:
    """The tools whose names and documentation share the most words with the request."""
    words = _words(request)
    scored = []
    for position, tool in enumerate(t for a in catalog.agents.values() for t in a.llm_tools):
        text = f"{tool.name.replace('_', ' ')} {tool.description} {json.dumps(tool.parameters_schema())}"
        score = len(words & _words(text)) + 3 * len(words & _words(tool.name.replace("_", " ")))
        scored.append((-score, position, tool))
    return [tool for score, _, tool in sorted(scored, key=lambda s: (s[0], s[1]))[:count] if score < 0]


def _words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z0-9]+", text.lower()) if len(w) > 2}


class Planner:
    def __init__(
        self,
        llm: LLM,
        catalog: Catalog,
        limits: PlanLimits,
        *,
        repair_rounds: int = 2,
        call_timeout_s: float = 150.0,
        total_timeout_s: float = 300.0,
        max_tokens: int = 1536,
    ) -> None:
        self.llm = llm
        self.catalog = catalog
        self.limits = limits
        self.repair_rounds = repair_rounds
        self.call_timeout_s = call_timeout_s
        self.total_timeout_s = total_timeout_s
        self.max_tokens = max_tokens
        self._built_for = -1
        self.refresh()

    def refresh(self) -> None:
        """Build the prompt and reply schema again when the catalog changed (a server came back)."""
        if self._built_for == self.catalog.revision:
            return
        self._built_for = self.catalog.revision
        self.example = worked_example(self.catalog)
        self.output = plan_draft_model(self.catalog, max_steps=self.limits.max_steps, outline=self.example.outline)
        self.prompt = system_prompt(self.catalog)
        self._full = "Details of the tools" not in self.prompt

    def request_message(self, request: str) -> str:
        if self._full:
            return f"Request: {request}\nPlan:"
        details = "\n".join(f"- {describe_tool(t).strip()[2:]}" for t in tools_in_play(self.catalog, request))
        return f"Tool details:\n{details}\nRequest: {request}\nPlan:" if details else f"Request: {request}\nPlan:"

    async def plan(self, request: str) -> PlanResult:
        self.refresh()
        messages = [
            Message(role="system", content=self.prompt),
            Message(role="user", content=self.request_message(request)),
        ]
        usage = Usage()
        problems: list[Problem] = []
        replies: list[str] = []
        parts: list[str] = []
        deadline = time.monotonic() + self.total_timeout_s
        for round_number in range(1, self.repair_rounds + 2):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise PlanningError(request, problems, f"within its time budget of {self.total_timeout_s:g} s", usage)
            guard = RepetitionGuard()
            generation = Generation(
                temperature=TEMPERATURES[min(round_number - 1, len(TEMPERATURES) - 1)],
                max_tokens=self.max_tokens,
                stop=guard,
                repair_rounds=0,  # this loop repairs, with the catalog's own validation
            )
            limit = min(self.call_timeout_s, remaining)
            draft: dict[str, Any] | None = None
            reply_text = ""
            with anyio.move_on_after(limit) as scope:
                try:
                    completion = await self.llm.complete(messages, self.output, role="planner", generation=generation)
                except LLMOutputError as exc:
                    usage = usage + (exc.usage or Usage())
                    problems, reply_text = self._unfinished(guard, exc)
                except LLMError as exc:  # the calls of earlier rounds count too
                    exc.with_usage(usage)
                    raise
                else:
                    usage = usage + completion.usage
                    draft = as_written(completion.value, self.catalog)
                    parts = list(getattr(completion.value, "parts", []))
            if scope.cancelled_caught:
                usage = usage + Usage(latency_s=limit)
                problems, reply_text = self._timed_out(guard, limit)
            if draft is not None:
                reply_text = json.dumps(draft)
            if reply_text and reply_text in replies:
                kept = self._kept(guard, request)
                if kept is not None:
                    return PlanResult(plan=kept, usage=usage, rounds=round_number, parts=parts)
                log.info("planner round %d repeated an earlier reply; giving up", round_number)
                raise PlanningError(request, problems, "(the model answered the same plan again)", usage)
            replies.append(reply_text)
            if draft is not None:
                plan, problems = self._check(draft, request)
                if plan is not None:
                    return PlanResult(plan=plan, usage=usage, rounds=round_number, parts=parts)
            log.info("planner round %d: %d problem(s)", round_number, len(problems))
            messages += [
                Message(role="assistant", content=reply_text or "(no reply)"),
                Message(
                    role="user",
                    content="That plan has problems:\n"
                    + "\n".join(f"- {p}" for p in problems)
                    + f"\nWrite the whole corrected plan for the request: {request}",
                ),
            ]
        raise PlanningError(request, problems, usage=usage)

    def _check(self, draft: dict[str, Any], request: str) -> tuple[Plan | None, list[Problem]]:
        """The draft as a plan when nothing is wrong with it, else its problems."""
        notes = _drop_unused_dependencies(draft)
        problems = self._leaks(draft, request)
        try:
            plan = parse_plan(draft, self.catalog, self.limits)
        except PlanValidationError as exc:
            return None, exc.problems + problems
        problems = plan_checks.problems(plan, self.catalog, request) + problems
        if problems:
            return None, problems
        return (plan.model_copy(update={"notes": notes}) if notes else plan), []

    def _kept(self, guard: RepetitionGuard, request: str) -> Plan | None:
        """After the model was told and repeated its steps again: the steps before the repetition,
        when they are a valid plan (measured: a one-step hotel search written twice, twice)."""
        if guard.repetition is None:
            return None
        try:
            value = self.output.model_validate({"steps": guard.repetition.kept})
        except ValidationError:
            return None
        plan, _ = self._check(as_written(value, self.catalog), request)
        if plan is None:
            return None
        return plan.model_copy(update={"notes": [*plan.notes, guard.repetition.describe()]})

    def _unfinished(self, guard: RepetitionGuard, exc: LLMOutputError) -> tuple[list[Problem], str]:
        """A reply that is not a whole plan: cut for repeating itself, cut at its token limit, or
        (from a model without a grammar) not a plan at all. The steps it completed go back."""
        if guard.repetition is not None:
            kept = json.dumps({"steps": guard.repetition.kept})
            return [
                Problem(
                    message=guard.repetition.describe(),
                    fix="write each step once and end the plan after the last step the request needs",
                )
            ], kept
        steps = complete_steps(_last_step_end(guard.seen)) if guard.seen else None
        if steps is not None and guard.seen and not _closed(guard.seen):
            return [
                Problem(
                    message=f"the reply was cut off at its length limit after {len(steps)} complete step(s)",
                    fix="write a shorter plan: fewer steps, short tasks, no repeated steps",
                )
            ], json.dumps({"steps": steps})
        return [
            Problem(message=f"the reply is not a plan ({'; '.join(exc.errors[:5])})", fix="answer with a JSON plan")
        ], exc.raw

    def _timed_out(self, guard: RepetitionGuard, limit: float) -> tuple[list[Problem], str]:
        steps = complete_steps(_last_step_end(guard.seen)) if guard.seen else None
        return [
            Problem(
                message=f"the reply took longer than {limit:g} s",
                fix="write a shorter plan: fewer steps, short tasks, no repeated steps",
            )
        ], json.dumps({"steps": steps}) if steps else ""

    def _leaks(self, draft: dict[str, Any], request: str) -> list[Problem]:
        """Texts of the worked example that turned up in a plan although the request never said them."""
        text = json.dumps(draft)
        return [
            Problem(message=f"the plan copies the example's {marker!r}", fix="use only values from the request")
            for marker in self.example.markers
            if marker in text and marker not in request
        ]


def as_written(reply: BaseModel, catalog: Catalog) -> dict[str, Any]:
    """The reply as the model wrote it: no declared defaults filled in (they apply at call time),
    parameters under their own names; a null for a parameter whose default is null is dropped (the
    reply schema makes the model decide about those, and null is the same as leaving it out)."""
    draft = reply.model_dump(mode="json", by_alias=True, exclude_unset=True)
    draft.pop("parts", None)  # the model's outline of the request, not part of the plan
    for step in draft.get("steps", []):
        args = step.get("args")
        agent = catalog.agents.get(step.get("agent", ""))
        if not isinstance(args, dict) or agent is None or step.get("tool") not in agent.tool_by_name:
            continue
        fields = agent.tool_by_name[step["tool"]].args_model.model_fields
        optional = {
            info.alias or name for name, info in fields.items() if not info.is_required() and info.default is None
        }
        step["args"] = {k: v for k, v in args.items() if not (v is None and k in optional)}
    return draft


def _drop_unused_dependencies(draft: dict[str, Any]) -> list[str]:
    """Remove from tool steps the `depends_on` entries whose results the step never uses (they only
    serialise independent work); agent steps read their dependencies' results, so theirs stay."""
    try:
        plan = Plan.model_validate(draft)
    except ValueError:
        return []  # validation reports it
    ids = {step.id for step in plan.steps}
    notes = []
    for raw, step in zip(draft.get("steps", []), plan.steps, strict=True):
        if step.tool is None or not step.depends_on:
            continue
        used = step.references()
        # Missing ids and self-dependencies stay for validation to report.
        unused = [d for d in step.depends_on if d not in used and d in ids and d != step.id]
        if unused:
            raw["depends_on"] = [d for d in step.depends_on if d not in unused]
            if not raw["depends_on"]:
                del raw["depends_on"]
            notes.append(
                f"step {step.id}: removed depends_on {unused}: its arguments do not use "
                f"{'that result' if len(unused) == 1 else 'those results'}"
            )
    return notes


def _closed(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def _last_step_end(text: str) -> str:
    """The reply up to the end of its last complete step (a truncated reply ends mid-step)."""
    for end in reversed([i + 1 for i, char in enumerate(text) if char == "}"]):
        if complete_steps(text[:end]) is not None:
            return text[:end]
    return ""
