"""A fake Flyte control plane: flyteidl2's own Connect ASGI server apps, served by uvicorn on
127.0.0.1 (a free port) in a thread, so the real Flyte client code talks to it over HTTP.

It serves what submission, listing and status reads call: the run service, the data proxy (upload
locations, inputs, action data), the cluster service (cluster selection: "this endpoint") and the
image service (the remote builder's existence check), plus the signed-URL PUT of the code bundle.
Every RPC is recorded with its request message; replies come from state a test sets, and any method
can be made to fail with a chosen Connect error.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import uvicorn
from connectrpc.code import Code
from connectrpc.errors import ConnectError
from connectrpc.request import RequestContext
from flyteidl2.cluster import payload_pb2 as cluster_pb2
from flyteidl2.cluster.service_connect import ClusterService, ClusterServiceASGIApplication
from flyteidl2.common import identifier_pb2, phase_pb2
from flyteidl2.common import run_pb2 as common_run_pb2
from flyteidl2.dataproxy import dataproxy_service_pb2 as dataproxy_pb2
from flyteidl2.dataproxy.dataproxy_service_connect import DataProxyService, DataProxyServiceASGIApplication
from flyteidl2.imagebuilder import definition_pb2 as image_definition_pb2
from flyteidl2.imagebuilder import payload_pb2 as image_pb2
from flyteidl2.imagebuilder.service_connect import ImageService, ImageServiceASGIApplication
from flyteidl2.task import common_pb2, task_definition_pb2
from flyteidl2.workflow import run_definition_pb2, run_service_pb2
from flyteidl2.workflow.run_service_connect import RunService, RunServiceASGIApplication
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from planning import flyte_setup

flyte_setup.import_flyte()

from flyte.types import TypeEngine  # noqa: E402  (after flyte_setup)

INPUTS_URI = "s3://fake-bucket/inputs/inputs.pb"


@dataclass
class Received:
    method: str
    request: Message


@dataclass
class FakeControlPlane:
    """The state behind the fake services. Set the reply fields, then read `received`."""

    org: str = ""
    created_run_name: str = "rfake0001"
    port: int = 0
    received: list[Received] = field(default_factory=list)
    uploads: dict[str, bytes] = field(default_factory=dict)
    runs: list[run_definition_pb2.Run] = field(default_factory=list)  # the ListRuns page
    run_details: dict[str, run_definition_pb2.RunDetails] = field(default_factory=dict)
    actions: dict[str, list[run_definition_pb2.Action]] = field(default_factory=dict)
    action_details: dict[tuple[str, str], run_definition_pb2.ActionDetails] = field(default_factory=dict)
    outputs: dict[tuple[str, str], common_pb2.Outputs] = field(default_factory=dict)
    failures: dict[str, ConnectError] = field(default_factory=dict)  # method name -> error it raises
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, method: str, request: Message) -> None:
        with self._lock:
            self.received.append(Received(method, request))
        if method in self.failures:
            raise self.failures[method]

    def methods(self) -> list[str]:
        with self._lock:
            return [r.method for r in self.received]

    def requests(self, method: str) -> list[Any]:
        with self._lock:
            return [r.request for r in self.received if r.method == method]

    @property
    def endpoint(self) -> str:
        return f"localhost:{self.port}"

    # -- the ASGI app ---------------------------------------------------------------------------

    def app(self) -> Any:
        services: list[Any] = [
            RunServiceASGIApplication(_RunService(self)),
            DataProxyServiceASGIApplication(_DataProxy(self)),
            ClusterServiceASGIApplication(_ClusterService(self)),
            ImageServiceASGIApplication(_ImageService(self)),
        ]

        async def dispatch(scope: dict[str, Any], receive: Any, send: Any) -> None:
            path = scope["path"]
            if path.startswith("/upload/"):
                await self._upload(path.removeprefix("/upload/"), receive, send)
                return
            for service in services:
                if path.startswith(service.path + "/"):
                    await service(scope, receive, send)
                    return
            await send({"type": "http.response.start", "status": 404, "headers": []})
            await send({"type": "http.response.body", "body": b""})

        return dispatch

    async def _upload(self, name: str, receive: Any, send: Any) -> None:
        """The object store behind the signed URLs CreateUploadLocation hands out."""
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        with self._lock:
            self.uploads[name] = body
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})


class _RunService(RunService):  # methods not defined here answer UNIMPLEMENTED
    def __init__(self, plane: FakeControlPlane) -> None:
        self.plane = plane

    async def create_run(
        self, request: run_service_pb2.CreateRunRequest, ctx: RequestContext
    ) -> run_service_pb2.CreateRunResponse:
        self.plane.record("CreateRun", request)
        project = request.project_id if request.HasField("project_id") else None
        run_id = identifier_pb2.RunIdentifier(
            org=self.plane.org,
            project=project.name if project else request.run_id.project,
            domain=project.domain if project else request.run_id.domain,
            name=self.plane.created_run_name,
        )
        run = run_pb(run_id, phase_pb2.ACTION_PHASE_QUEUED, labels=dict(request.run_spec.labels.values))
        return run_service_pb2.CreateRunResponse(run=run)

    async def list_runs(
        self, request: run_service_pb2.ListRunsRequest, ctx: RequestContext
    ) -> run_service_pb2.ListRunsResponse:
        self.plane.record("ListRuns", request)
        return run_service_pb2.ListRunsResponse(runs=self.plane.runs)

    async def get_run_details(
        self, request: run_service_pb2.GetRunDetailsRequest, ctx: RequestContext
    ) -> run_service_pb2.GetRunDetailsResponse:
        self.plane.record("GetRunDetails", request)
        details = self.plane.run_details.get(request.run_id.name)
        if details is None:
            raise ConnectError(Code.NOT_FOUND, f"run {request.run_id.name} not found")
        return run_service_pb2.GetRunDetailsResponse(details=details)

    async def list_actions(
        self, request: run_service_pb2.ListActionsRequest, ctx: RequestContext
    ) -> run_service_pb2.ListActionsResponse:
        self.plane.record("ListActions", request)
        return run_service_pb2.ListActionsResponse(actions=self.plane.actions.get(request.run_id.name, []))

    async def get_action_details(
        self, request: run_service_pb2.GetActionDetailsRequest, ctx: RequestContext
    ) -> run_service_pb2.GetActionDetailsResponse:
        self.plane.record("GetActionDetails", request)
        key = (request.action_id.run.name, request.action_id.name)
        if key not in self.plane.action_details:
            raise ConnectError(Code.NOT_FOUND, f"action {key} not found")
        return run_service_pb2.GetActionDetailsResponse(details=self.plane.action_details[key])

    async def abort_run(
        self, request: run_service_pb2.AbortRunRequest, ctx: RequestContext
    ) -> run_service_pb2.AbortRunResponse:
        self.plane.record("AbortRun", request)
        return run_service_pb2.AbortRunResponse()


class _DataProxy(DataProxyService):
    def __init__(self, plane: FakeControlPlane) -> None:
        self.plane = plane

    async def create_upload_location(
        self, request: dataproxy_pb2.CreateUploadLocationRequest, ctx: RequestContext
    ) -> dataproxy_pb2.CreateUploadLocationResponse:
        self.plane.record("CreateUploadLocation", request)
        return dataproxy_pb2.CreateUploadLocationResponse(
            signed_url=f"http://127.0.0.1:{self.plane.port}/upload/{request.filename}",
            native_url=f"s3://fake-bucket/{request.project}/{request.domain}/{request.filename}",
        )

    async def upload_inputs(
        self, request: dataproxy_pb2.UploadInputsRequest, ctx: RequestContext
    ) -> dataproxy_pb2.UploadInputsResponse:
        self.plane.record("UploadInputs", request)
        offloaded = common_run_pb2.OffloadedInputData(uri=INPUTS_URI, inputs_hash="fake-inputs-hash")
        return dataproxy_pb2.UploadInputsResponse(offloaded_input_data=offloaded)

    async def get_action_data(
        self, request: dataproxy_pb2.GetActionDataRequest, ctx: RequestContext
    ) -> dataproxy_pb2.GetActionDataResponse:
        self.plane.record("GetActionData", request)
        key = (request.action_id.run.name, request.action_id.name)
        if key not in self.plane.outputs:
            raise ConnectError(Code.NOT_FOUND, f"no data for action {key}")
        return dataproxy_pb2.GetActionDataResponse(outputs=self.plane.outputs[key])


class _ClusterService(ClusterService):
    def __init__(self, plane: FakeControlPlane) -> None:
        self.plane = plane

    async def select_cluster(
        self, request: cluster_pb2.SelectClusterRequest, ctx: RequestContext
    ) -> cluster_pb2.SelectClusterResponse:
        self.plane.record("SelectCluster", request)
        return cluster_pb2.SelectClusterResponse()  # no endpoint: "use the one you called"


class _ImageService(ImageService):
    def __init__(self, plane: FakeControlPlane) -> None:
        self.plane = plane

    async def get_image(self, request: image_pb2.GetImageRequest, ctx: RequestContext) -> image_pb2.GetImageResponse:
        self.plane.record("GetImage", request)
        image = image_definition_pb2.Image(id=request.id, fqin=f"registry.example/{request.id.name}")
        return image_pb2.GetImageResponse(image=image)


@contextmanager
def serve(plane: FakeControlPlane) -> Iterator[FakeControlPlane]:
    """Serve the plane on a free 127.0.0.1 port until the block ends.

    The socket listens before the server thread starts, so clients may connect at once: their
    connections wait in the backlog until uvicorn accepts them (no start-up race to wait out).
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    plane.port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(plane.app(), lifespan="off", log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        yield plane
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


# -- building replies -----------------------------------------------------------------------------


def timestamp(moment: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def run_pb(
    run_id: identifier_pb2.RunIdentifier,
    phase: int,
    *,
    labels: dict[str, str] | None = None,
    task: str = "planner_mcp.run_plan",
    start: datetime | None = None,
    end: datetime | None = None,
) -> run_definition_pb2.Run:
    """A run as ListRuns and CreateRun return it: its root action `a0` and its labels."""
    return run_definition_pb2.Run(action=action_pb(run_id, "a0", phase, task=task, start=start, end=end), labels=labels)


def action_pb(
    run_id: identifier_pb2.RunIdentifier,
    name: str,
    phase: int,
    *,
    task: str = "planner_mcp_agents.run_step",
    short_name: str = "",
    parent: str = "",
    group: str = "",
    attempts: int = 1,
    start: datetime | None = None,
    end: datetime | None = None,
) -> run_definition_pb2.Action:
    metadata = run_definition_pb2.ActionMetadata(
        parent=parent,
        group=group,
        task=run_definition_pb2.TaskActionMetadata(
            id=task_definition_pb2.TaskIdentifier(
                org=run_id.org, project=run_id.project, domain=run_id.domain, name=task, version="v1"
            ),
            short_name=short_name or task.rsplit(".", 1)[-1],
        ),
    )
    status = run_definition_pb2.ActionStatus(
        phase=phase,  # type: ignore[arg-type]  # an ActionPhase value
        attempts=attempts,
        start_time=timestamp(start) if start else None,
        end_time=timestamp(end) if end else None,
    )
    return run_definition_pb2.Action(
        id=identifier_pb2.ActionIdentifier(run=run_id, name=name), metadata=metadata, status=status
    )


def details_pb(action: run_definition_pb2.Action, *, error: str | None = None) -> run_definition_pb2.ActionDetails:
    return run_definition_pb2.ActionDetails(
        id=action.id,
        metadata=action.metadata,
        status=action.status,
        error_info=run_definition_pb2.ErrorInfo(message=error, kind=run_definition_pb2.ErrorInfo.KIND_USER)
        if error
        else None,
    )


async def outputs_pb(value: Any, python_type: type) -> common_pb2.Outputs:
    """A task's single output (`o0`), encoded the way Flyte stores it."""
    literal = await TypeEngine.to_literal(value, python_type, TypeEngine.to_literal_type(python_type))
    return common_pb2.Outputs(literals=[common_pb2.NamedLiteral(name="o0", value=literal)])


async def decode(literal: Any, python_type: type) -> Any:
    return await TypeEngine.to_python_value(literal, python_type)
