"""Restate's transient SQL answers: one list, used by the admin API and restatectl alike, and a drill
that its own query ended never kills the invocations it watched."""

from __future__ import annotations

import subprocess
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest

from drillkit.components.restate_cluster import Restatectl
from drillkit.errors import ComponentError, HttpError
from drillkit.kit.frame import Drill, judge_exception, stop_unfinished
from drillkit.kit.pace import Pace
from drillkit.reports.record import DrillRecord
from drillkit.restate_api import (
    TRANSIENT_QUERY_ERRORS,
    AdminApi,
    is_query_error,
    is_transient_query_error,
)
from drillkit.waits import WaitTimeout

QUERY_URL = "http://127.0.0.1:9070/query"
# What Restate (and httpx, for a broken chunked answer) said in the runs that met them.
SEEN = [
    (500, "partition 3 doesn't exist on this node, this is benign"),
    (500, "Internal error: No such scanner"),
    (500, "Error during planning: node N1:3 was shut down or removed"),
    (
        None,
        "RemoteProtocolError: peer closed connection without sending complete message body (incomplete chunked read)",
    ),
]


@pytest.mark.parametrize(("status", "body"), SEEN)
def test_each_answer_seen_is_transient(status, body):
    assert is_transient_query_error(HttpError("POST", QUERY_URL, status, body))


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (500, "Error during planning: table 'sys_invocations' not found"),  # a bad query stays a failure
        (400, "partition 3 doesn't exist on this node"),  # a client error is never asked again
        (None, "ConnectError: [Errno 111] Connection refused"),  # a server that is down is not transient
    ],
)
def test_other_failures_are_not(status, body):
    assert not is_transient_query_error(HttpError("POST", QUERY_URL, status, body))
    assert not is_transient_query_error(ValueError(body))


def test_every_marker_is_matched_somewhere_in_what_was_seen():
    # The list and the evidence stay together: a marker nobody has seen has no place in it.
    for marker in TRANSIENT_QUERY_ERRORS:
        assert any(marker in body for _, body in SEEN), marker


def test_the_admin_api_asks_again_after_a_node_gone_and_a_broken_chunked_answer():
    answers = iter(["gone", "chunked", "ok"])

    def handler(request: httpx.Request) -> httpx.Response:
        answer = next(answers)
        if answer == "gone":
            return httpx.Response(500, text="node N1:3 was shut down or removed")
        if answer == "chunked":
            raise httpx.RemoteProtocolError(
                "peer closed connection without sending complete message body (incomplete chunked read)",
                request=request,
            )
        return httpx.Response(200, json={"rows": [{"id": "inv_1", "status": "running"}]})

    admin = AdminApi("http://127.0.0.1:9070", transport=httpx.MockTransport(handler))
    assert admin.invocation("inv_1") == {"id": "inv_1", "status": "running"}
    assert next(answers, "done") == "done"


def _ctl(stderrs: list[str]) -> tuple[Restatectl, list[list[str]]]:
    calls: list[list[str]] = []

    def run(argv, **kwargs):
        calls.append(argv)
        if len(calls) <= len(stderrs):
            return subprocess.CompletedProcess(argv, 1, "", stderrs[len(calls) - 1])
        return subprocess.CompletedProcess(argv, 0, '{"partition_id": 0}\n1 rows. Query took 1ms\n', "")

    return Restatectl(binary=Path("restatectl"), run=run), calls


def test_restatectl_asks_again_on_the_same_list():
    ctl, calls = _ctl(["Error: node N2:1 was shut down or removed", "Error: No such scanner"])
    assert ctl.sql(["http://127.0.0.1:5122"], "SELECT partition_id FROM partitions") == [{"partition_id": 0}]
    assert len(calls) == 3
    ctl, calls = _ctl(["Error: syntax error"])
    with pytest.raises(ComponentError, match="syntax error"):
        ctl.sql(["http://127.0.0.1:5122"], "SELEC")
    assert len(calls) == 1


class _Admin:
    def __init__(self) -> None:
        self.killed: list[str] = []

    def invocation(self, invocation_id: str) -> dict[str, str]:
        return {"id": invocation_id, "status": "running"}

    def kill_invocation(self, invocation_id: str) -> None:
        self.killed.append(invocation_id)


def _drill_ended_by(exc: Exception) -> tuple[Drill, _Admin]:
    admin = _Admin()
    drill = Drill(SimpleNamespace(), DrillRecord("server-crash", {}), Pace())  # type: ignore[arg-type]
    drill.handles = SimpleNamespace(restate=SimpleNamespace(admin=admin))  # type: ignore[assignment]
    drill.fault_injected = True
    drill.record.invocation_id = "inv_1"
    judge_exception(drill, exc)
    return drill, admin


def test_a_drill_its_own_query_ended_leaves_the_invocation_to_finish():
    failed = HttpError("POST", QUERY_URL, 500, "something Restate never said before")
    assert is_query_error(failed)
    drill, admin = _drill_ended_by(failed)
    assert drill.record.verdict == "ERROR"  # the tool could not look: said, not hidden
    stop_unfinished(drill)
    assert admin.killed == []
    assert any("left to finish, not killed" in note for note in drill.record.notes)


@pytest.mark.parametrize(
    "exc",
    [
        WaitTimeout("the invocation to complete", 30, {"status": "backing-off"}, stalled=True),
        HttpError("PATCH", "http://127.0.0.1:9070/invocations/inv_1/resume", 500, "boom"),
    ],
)
def test_a_drill_that_failed_otherwise_still_kills_what_it_left_running(exc):
    assert not is_query_error(exc)
    drill, admin = _drill_ended_by(exc)
    stop_unfinished(drill)
    assert admin.killed == ["inv_1"]
