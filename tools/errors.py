"""Errors raised by tools.

ToolError            the tool refused its input or could not do the job; the message is
                     written for a model or a person to read and act on
  TransientToolError a failure worth retrying (network, rate limit, sandbox start)
"""


class ToolError(Exception):
    """A tool failed in a way the caller can understand; the message names the problem and the fix."""


class TransientToolError(ToolError):
    """A tool failed for a reason that may pass (network, 429/5xx, resource start); safe to retry."""
