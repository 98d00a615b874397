"""The error tree: every error a face shows derives from UserFixableError, with its exit code."""

from __future__ import annotations

import pytest

from agents.llm import LLMError, LLMNotConfiguredError, LLMOutputError, LLMTransientError
from agents.mcp_servers import ServersConfigError
from agents.planner import PlanningError
from planning.catalog import CatalogError, CatalogFactoryError
from planning.cluster import RemoteError
from planning.errors import EXIT_FAILED, EXIT_USAGE, RunAbortedError, RunBusyError, UsageError, UserFixableError
from planning.remote import (
    FlyteAuthError,
    FlyteNotConfiguredError,
    FlyteRequestError,
    FlyteRunNotFoundError,
    FlyteUnreachableError,
    NotOnFlyteError,
)
from planning.store import BadCursorError, RunNotFoundError, StoreError, StoreUnavailableError
from planning.validate import PlanValidationError
from server.http_auth import HttpConfigError
from server.http_limits import HttpLimitsError

FIXABLE = [
    LLMError,
    LLMNotConfiguredError,
    LLMOutputError,
    LLMTransientError,
    ServersConfigError,
    PlanningError,
    CatalogError,
    CatalogFactoryError,
    RemoteError,
    FlyteAuthError,
    FlyteNotConfiguredError,
    FlyteRequestError,
    FlyteRunNotFoundError,
    FlyteUnreachableError,
    NotOnFlyteError,
    RunBusyError,
    RunAbortedError,
    StoreError,
    StoreUnavailableError,
    RunNotFoundError,
    BadCursorError,
    PlanValidationError,
    HttpConfigError,
    HttpLimitsError,
]


@pytest.mark.parametrize("error", FIXABLE, ids=lambda error: error.__name__)
def test_every_error_a_face_shows_derives_from_the_one_fixable_root(error: type[Exception]) -> None:
    assert issubclass(error, UserFixableError)


def test_a_bad_input_document_exits_with_the_usage_code_and_everything_else_with_failed() -> None:
    assert [e for e in FIXABLE if e.exit_code == EXIT_USAGE] == [PlanValidationError]
    assert issubclass(PlanValidationError, UsageError)
    assert all(e.exit_code == EXIT_FAILED for e in FIXABLE if e is not PlanValidationError)


def test_the_errors_that_also_are_builtin_kinds_keep_them() -> None:
    assert issubclass(RunNotFoundError, LookupError) and issubclass(FlyteRunNotFoundError, LookupError)
    assert issubclass(CatalogError, LookupError) and issubclass(BadCursorError, ValueError)
    assert issubclass(PlanValidationError, ValueError) and issubclass(NotOnFlyteError, ValueError)
