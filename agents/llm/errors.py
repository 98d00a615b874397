"""Errors raised by the LLM layer: the one contract every provider keeps. They are defined in
planning.errors (the step runner classifies them without importing agents; the whole error tree
is drawn there) and re-exported here.

Every failure of an LLM call (transport, HTTP status, a body that is not JSON or is cut off, a reply
outside the schema, a timeout) is one of these, with a message naming the server, the model and the
fix; `usage` is what the failed call cost (every call made counts, failed ones too).

LLMError                    an LLM call failed for a reason a person must fix (bad configuration,
                            rejected credentials, unknown model, a server that does not speak the
                            API); retrying will not help
  LLMNotConfiguredError     no LLM is configured; the message says how to configure one
  LLMTransientError         the server stayed unreachable, overloaded or rate-limited after the
                            bounded retries; the executor may retry the step later
  LLMOutputError            the reply did not validate against the requested output model, even
                            after one repair round; carries the raw reply and the errors
"""

from planning.errors import (
    HOW_TO_CONFIGURE,
    RAW_REPLY_LIMIT,
    LLMError,
    LLMNotConfiguredError,
    LLMOutputError,
    LLMTransientError,
    truncate,
)

__all__ = [
    "HOW_TO_CONFIGURE",
    "RAW_REPLY_LIMIT",
    "LLMError",
    "LLMNotConfiguredError",
    "LLMOutputError",
    "LLMTransientError",
    "truncate",
]
