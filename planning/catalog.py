"""The catalog: which agents exist, which tools each has, and each tool's typed signature.

Built from an explicit list (no registration at import time). A tool is a plain typed function or
bound method: its signature is the argument schema and its docstring the description a model reads.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import typing
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, JsonValue, create_model
from pydantic_core import to_jsonable_python

from planning.errors import UserFixableError
from planning.tool_schema import PARAMETER_NAME, args_model_from_schema, given_arguments
from tools.arguments import format_errors as format_errors  # re-exported
from tools.arguments import format_validation_error as format_validation_error  # re-exported
from tools.arguments import unchecked

if TYPE_CHECKING:
    from planning.settings import Settings


class CatalogError(UserFixableError, LookupError):
    """An agent or tool name that the catalog does not know; the message lists the valid ones."""


class CatalogFactoryError(UserFixableError, ValueError):
    """The catalog cannot be built from the settings: `PLANNER_MCP_CATALOG` does not name a working
    factory, or `PLANNER_MCP_SERVERS` names an unusable servers file."""


class ToolDefinitionError(TypeError):
    """A tool whose signature cannot be described to a model exactly as declared."""


def _field_name(index: int, name: str, taken: set[str]) -> str:
    """The pydantic field that holds parameter `name`; the parameter's own name is its alias.

    pydantic keeps names with a leading underscore as private attributes (silently dropped from
    the schema) and refuses names that shadow BaseModel's own (`json`, `model_config`), so those
    are stored under a neutral field name instead.
    """
    if name.isidentifier() and not name.startswith(("_", "model_")) and not hasattr(BaseModel, name):
        return name
    field = f"param_{index}"
    while field in taken:
        field += "_"
    return field


@dataclass(frozen=True)
class ToolSpec:
    """One callable tool with the pydantic model of its arguments.

    A tool made from a Python function is called with keyword arguments; a tool defined by a JSON
    Schema (`input_schema`, as MCP servers publish them) is called with one mapping of the
    arguments given, named as its schema names them.
    """

    name: str
    description: str
    function: Callable[..., Any]
    args_model: type[BaseModel]
    input_schema: Mapping[str, Any] | None = field(default=None, compare=False)  # dicts cannot be hashed
    # False for tools that change or delete things and that no entry allowed: only plans written
    # by a person (not the planner, not an agent's LLM) may call them.
    planner_may_call: bool = True
    # Changes or deletes something that cannot be taken back: a plan the planner wrote that uses it
    # waits for a person's approval (planning.approval).
    destructive: bool = False

    @classmethod
    def from_function(
        cls, function: Callable[..., Any], name: str | None = None, *, destructive: bool = False
    ) -> ToolSpec:
        name = name or function.__name__
        hints = typing.get_type_hints(function, include_extras=True)
        fields: dict[str, Any] = {}
        parameters = list(inspect.signature(function).parameters.values())
        declared = {param.name for param in parameters}
        for index, param in enumerate(parameters):
            if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                raise ToolDefinitionError(f"tool {name!r}: *args/**kwargs cannot be described; name every argument")
            if param.name not in hints:
                raise ToolDefinitionError(f"tool {name!r}: argument {param.name!r} needs a type annotation")
            default = ... if param.default is param.empty else param.default
            field = _field_name(index, param.name, declared | set(fields))
            fields[field] = (hints[param.name], Field(default, alias=param.name) if field != param.name else default)
        args_model = create_model(
            f"{name}_args",
            __config__=ConfigDict(extra="forbid", title=f"{name} arguments", validate_by_name=False),
            **fields,
        )
        return cls(
            name=name,
            description=inspect.getdoc(function) or "",
            function=unchecked(function),  # `call` validates with args_model: once
            args_model=args_model,
            destructive=destructive,
        )

    def __post_init__(self) -> None:
        # Whoever built the args model, every parameter must reach the model under its own name:
        # refuse here rather than drop one silently (pydantic's private `_x`) or fail at call time.
        private = sorted(getattr(self.args_model, "__private_attributes__", {}))
        if private:
            raise ToolDefinitionError(
                f"tool {self.name!r}: the args model {self.args_model.__name__} keeps {private} as private "
                "attributes, so a model could never pass them; declare them as fields with an alias "
                "(Field(alias='_from')) or build the tool with ToolSpec.from_function"
            )
        for parameter in self.parameter_names():
            # Leading underscores are fine (`_from`, `_class` are common in other systems).
            if not PARAMETER_NAME.fullmatch(parameter):
                raise ToolDefinitionError(
                    f"tool {self.name!r}: parameter {parameter!r} cannot be written by a model as it is named; "
                    "use 1-64 ASCII letters, digits, '_', '-' or '.', starting with a letter or '_'"
                )

    def parameter_names(self) -> list[str]:
        """The parameters as a caller writes them (aliases where the field is stored otherwise)."""
        return [info.alias or field for field, info in self.args_model.model_fields.items()]

    @classmethod
    def from_json_schema(
        cls,
        name: str,
        description: str,
        input_schema: Mapping[str, Any],
        function: Callable[[dict[str, JsonValue]], Awaitable[JsonValue]],
        *,
        planner_may_call: bool = True,
        destructive: bool = False,
    ) -> ToolSpec:
        """A tool defined as other systems define them: a name (dots and dashes allowed, up to 128
        characters), a description and a JSON Schema of its arguments (raises ToolSchemaError)."""
        return cls(
            name=name,
            description=description,
            function=function,
            args_model=args_model_from_schema(name, input_schema),
            input_schema=input_schema,
            planner_may_call=planner_may_call,
            destructive=destructive,
        )

    def parameters_schema(self) -> dict[str, Any]:
        return self.args_model.model_json_schema(by_alias=True)

    def validate_args(self, args: Mapping[str, JsonValue]) -> BaseModel:
        """Validate arguments against the signature (raises pydantic's ValidationError)."""
        return self.args_model.model_validate(dict(args))

    async def call(self, args: Mapping[str, JsonValue]) -> JsonValue:
        """Validate the arguments, call the tool and return its result as JSON-compatible data.

        Synchronous tools are called inline: they must be cheap (math, string); slow work belongs
        in async tools.
        """
        validated = self.validate_args(args)
        if self.input_schema is not None:
            return to_jsonable_python(await self.function(given_arguments(validated)))
        kwargs = {
            info.alias or field: getattr(validated, field) for field, info in type(validated).model_fields.items()
        }
        result = self.function(**kwargs)
        if inspect.isawaitable(result):
            result = await result
        return to_jsonable_python(result)


@dataclass(frozen=True)
class AgentSpec:
    """A specialist: its tools, instructions for its LLM, and how it may run."""

    name: str
    description: str
    tools: tuple[ToolSpec, ...]
    instructions: str = ""
    max_concurrency: int = 4
    timeout_s: float = 120.0
    max_iterations: int = 4
    # Reaches beyond this machine (the web, an online API): the MCP tool's open-world hint.
    open_world: bool = False
    # Runs untrusted code: its steps run in the isolated Flyte environment (`code_env`: own pods,
    # a sandbox, only the LLM key), not beside the other agents.
    isolated: bool = False
    # Turns a tool result into the step's value, for tool steps and (the last call's) agent steps
    # alike; raises ToolError when the result means the task failed: a tool step fails, an agent
    # sees why and tries again. The raw result is kept as the step's `details`.
    finish: Callable[[JsonValue], JsonValue] | None = None
    # Why the agent cannot run at all now (an MCP server that failed to start); its steps fail with it.
    unavailable: str | None = None
    # For an unavailable agent: try again to reach what it needs (start the server, list its tools).
    # Returns the agent as it is now (available, or unavailable with the latest reason), or None when
    # it is too soon to try again (a back-off, so a broken server is not restarted for every step).
    revive: Callable[[], Awaitable[AgentSpec | None]] | None = field(default=None, compare=False, repr=False)
    # Why its steps cannot run on a Flyte cluster (a server that is a local process); None: they can.
    local_only: str | None = None
    tool_by_name: Mapping[str, ToolSpec] = field(init=False, repr=False, compare=False)  # derived from tools

    def __post_init__(self) -> None:
        by_name: dict[str, ToolSpec] = {}
        for tool in self.tools:
            if tool.name in by_name:
                raise ValueError(f"agent {self.name!r} lists tool {tool.name!r} twice")
            by_name[tool.name] = tool
        object.__setattr__(self, "tool_by_name", by_name)

    @property
    def llm_tools(self) -> tuple[ToolSpec, ...]:
        """The tools an LLM (the planner, the agent's own) may call: not those only a person's plan may."""
        return tuple(tool for tool in self.tools if tool.planner_may_call)

    def tool(self, name: str) -> ToolSpec:
        try:
            return self.tool_by_name[name]
        except KeyError:
            if self.unavailable:
                raise CatalogError(self.unavailable) from None
            raise CatalogError(
                f"agent {self.name!r} has no tool {name!r}; its tools are: {', '.join(sorted(self.tool_by_name))}"
            ) from None


class Catalog:
    """The agents a plan may use, by name."""

    def __init__(self, agents: Iterable[AgentSpec], *, close: Callable[[], None] | None = None) -> None:
        """`close` releases what the agents hold (e.g. MCP server sessions); `Catalog.close` calls it."""
        self._close = close
        self.agents: dict[str, AgentSpec] = {}
        # Counts the agents replaced since (a revived server's): what was built from the catalog
        # (a planner's prompt and reply schema) is rebuilt when it changed.
        self.revision = 0
        for agent in agents:
            if agent.name in self.agents:
                raise ValueError(f"the catalog lists agent {agent.name!r} twice")
            self.agents[agent.name] = agent

    def close(self) -> None:
        if self._close is not None:
            close, self._close = self._close, None
            close()

    @property
    def has_person_only_tools(self) -> bool:
        """Whether a tool is only a person's plan's to call (an MCP server's destructive tool): then
        whatever runs a plan (execute_plan, resume_run, approve_run) may call it."""
        return any(len(agent.llm_tools) < len(agent.tools) for agent in self.agents.values())

    def agent(self, name: str) -> AgentSpec:
        try:
            return self.agents[name]
        except KeyError:
            raise CatalogError(f"unknown agent {name!r}; the agents are: {', '.join(sorted(self.agents))}") from None

    async def revived(self, name: str) -> AgentSpec:
        """The agent `name`; when it is unavailable, tried again first (see `AgentSpec.revive`), and
        the catalog keeps what came of it (its tools, once the server is back, for plans and prompts)."""
        agent = self.agent(name)
        if agent.unavailable is None or agent.revive is None:
            return agent
        now = await agent.revive()
        if now is None:
            return agent
        if self.agents.get(name) is agent:  # not replaced meanwhile by a concurrent revival
            self.agents[name] = now
            self.revision += 1
        return self.agents[name]

    async def revive_unavailable(self) -> bool:
        """Try again, at once, every unavailable agent whose back-off is over; whether any came back."""
        names = [agent.name for agent in self.agents.values() if agent.unavailable and agent.revive]
        revived = await asyncio.gather(*(self.revived(name) for name in names))
        return any(agent.unavailable is None for agent in revived)

    def describe(self) -> list[dict[str, Any]]:
        """Every agent with its description and its tools' JSON schemas (for clients and prompts)."""
        return [
            {
                "name": agent.name,
                "description": agent.description,
                **({"unavailable": agent.unavailable} if agent.unavailable else {}),
                "tools": [
                    {
                        "name": t.name,
                        "description": t.description,
                        "parameters": t.parameters_schema(),
                        **({} if t.planner_may_call else {"person_only": True}),
                    }
                    for t in agent.tools
                ],
            }
            for agent in self.agents.values()
        ]


def load_catalog(settings: Settings) -> Catalog:
    """Build the catalog named by `settings.catalog` (`module:function`, called with the settings)."""
    module_name, _, function_name = settings.catalog.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), function_name)
    except (ImportError, AttributeError, ValueError) as exc:
        raise CatalogFactoryError(
            f"PLANNER_MCP_CATALOG={settings.catalog!r} does not name a catalog factory ({exc}); "
            "use `module:function`, e.g. agents.catalog:build_catalog"
        ) from None
    catalog = factory(settings)
    if not isinstance(catalog, Catalog):
        raise CatalogFactoryError(f"{settings.catalog} returned {type(catalog).__name__}, not a Catalog")
    return catalog
