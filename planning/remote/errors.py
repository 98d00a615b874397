"""The remote engine's errors, and how the Flyte client's failures become them.

RemoteError
├── FlyteNotConfiguredError  no endpoint, project or domain anywhere
├── FlyteUnreachableError    the endpoint does not answer, or not in time
├── FlyteAuthError           the control plane refused the credentials
├── FlyteRunNotFoundError    no Flyte run by that name (also a LookupError)
├── NotOnFlyteError          the stored run was never submitted to a cluster (also a ValueError)
└── FlyteRequestError        any other refusal (bad request, image build, upload)
"""

from __future__ import annotations

from connectrpc.code import Code
from connectrpc.errors import ConnectError

from planning import flyte_setup
from planning.cluster import RemoteError

flyte = flyte_setup.import_flyte()

# After flyte_setup has tamed Flyte's stdout habits (the MCP wire in stdio mode).
from flyte.errors import BaseRuntimeError  # noqa: E402

__all__ = [
    "FlyteAuthError",
    "FlyteNotConfiguredError",
    "FlyteRequestError",
    "FlyteRunNotFoundError",
    "FlyteUnreachableError",
    "NotOnFlyteError",
    "RemoteError",
    "translate",
]


class FlyteNotConfiguredError(RemoteError):
    """No endpoint, project or domain is configured anywhere."""


class FlyteUnreachableError(RemoteError):
    """The Flyte endpoint did not answer, or not within the time allowed."""


class FlyteAuthError(RemoteError):
    """The Flyte control plane refused the credentials."""


class FlyteRunNotFoundError(RemoteError, LookupError):
    def __init__(self, name: str, where: str) -> None:
        super().__init__(
            f"no Flyte run named {name!r} in {where}; list them with list_runs(source='flyte') "
            "(or `planner-mcp runs --flyte`), and check the project and domain"
        )


class NotOnFlyteError(RemoteError, ValueError):
    def __init__(self, run_id: str) -> None:
        super().__init__(
            f"run {run_id!r} was never submitted to Flyte (it runs locally); read it from the run store, "
            "or submit it with the remote engine (PLANNER_MCP_ENGINE=remote)"
        )


class FlyteRequestError(RemoteError):
    """The control plane refused a request for another reason (its message is included)."""


def _connect_error(exc: BaseException) -> ConnectError | None:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, ConnectError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def translate(exc: Exception, what: str, where: str, run_name: str | None) -> RemoteError:
    """A Flyte client failure as one of our errors, saying what to do."""
    connect = _connect_error(exc)
    code = connect.code if connect is not None else None
    detail = connect.message if connect is not None else str(exc)
    if code in (Code.UNAUTHENTICATED, Code.PERMISSION_DENIED) or _is_auth_error(exc):
        return FlyteAuthError(
            f"could not {what}: {where} refused the credentials ({detail}); log in again "
            "(`flyte get project` starts the login), or set FLYTE_API_KEY or the client credentials in "
            "the Flyte config, and check access to the project"
        )
    if code in (Code.UNAVAILABLE, Code.DEADLINE_EXCEEDED) or _is_unavailable(exc):
        return FlyteUnreachableError(
            f"could not {what}: {where} is unreachable ({detail}); check PLANNER_MCP_FLYTE_ENDPOINT "
            "(or the Flyte config's admin.endpoint), that the cluster is up, and `admin.insecure` for a "
            "plain-HTTP sandbox"
        )
    if code == Code.NOT_FOUND and run_name is not None:
        return FlyteRunNotFoundError(run_name, where)
    return FlyteRequestError(f"could not {what}: {where} answered: {detail}")


def _is_auth_error(exc: BaseException) -> bool:
    from flyte.remote._client.auth.errors import AccessTokenNotFoundError, AuthenticationError

    return isinstance(exc, AuthenticationError | AccessTokenNotFoundError)


_UNAVAILABLE_CODES = frozenset({"EndpointUnavailable", "EndpointUnreachable", "SystemUnavailableError"})


def _is_unavailable(exc: BaseException) -> bool:
    if isinstance(exc, BaseRuntimeError):
        return exc.code in _UNAVAILABLE_CODES
    return isinstance(exc, OSError)
