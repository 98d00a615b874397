"""Errors raised by tools.

ToolError               the tool refused its input or could not do the job; the message is
                        written for a model or a person to read and act on
  TransientToolError    a failure worth retrying (network, rate limit, sandbox start)
  ToolUnavailableError  the tool cannot work on this server until its operator fixes the setup
                        (no working code sandbox): neither a retry nor other arguments help
  ToolArgumentsError    a direct call's arguments do not fit the tool's signature (see
                        tools.arguments.checked); one line per problem
"""

from pydantic import JsonValue


class ToolError(Exception):
    """A tool failed in a way the caller can understand; the message names the problem and the fix.

    `details` is what the tool produced before it failed, kept with the failed step (a failed
    program's whole run), or None.
    """

    def __init__(self, message: str, details: JsonValue = None) -> None:
        super().__init__(message)
        self.details = details


class TransientToolError(ToolError):
    """A tool failed for a reason that may pass (network, 429/5xx, resource start); safe to retry."""


class ToolUnavailableError(ToolError):
    """The tool cannot work on this server as it is set up; the message names the operator's fix."""


class ToolArgumentsError(ToolError):
    """Arguments that the tool's signature refuses; `problems` has one readable line per problem."""

    def __init__(self, tool: str, problems: list[str]) -> None:
        super().__init__(f"invalid arguments for {tool}: {'; '.join(problems)}")
        self.problems = problems
