"""Admin and ingress clients against httpx.MockTransport; the CLI's command lines with a fake runner."""

import json
import subprocess

import httpx
import pytest

from drillkit.errors import CommandError, HttpError
from drillkit.restate_api import AdminApi, IngressApi
from drillkit.restate_cli import RestateCli


def admin_with(handler):
    return AdminApi("http://127.0.0.1:9070", transport=httpx.MockTransport(handler))


def ingress_with(handler):
    return IngressApi("http://127.0.0.1:8080", transport=httpx.MockTransport(handler))


def test_query_asks_for_json_and_returns_rows():
    seen = {}

    def handler(request):
        seen["accept"] = request.headers["accept"]
        seen["body"] = json.loads(request.content)
        return httpx.Response(200, json={"rows": [{"id": "inv_1", "status": "running"}]})

    row = admin_with(handler).invocation("inv_1")
    assert row == {"id": "inv_1", "status": "running"}
    assert seen["accept"] == "application/json"
    assert "WHERE id = 'inv_1'" in seen["body"]["query"]


def test_query_refuses_ids_that_could_escape_sql():
    with pytest.raises(ValueError):
        admin_with(lambda r: httpx.Response(200, json={"rows": []})).invocation("x' OR '1'='1")


def test_query_ready_is_false_while_partitions_are_missing():
    asked = []

    def missing(request):
        asked.append(request.url.path)
        return httpx.Response(500, json={"message": "partition 1 doesn't exist on this node"})

    # The transient answer is asked again for `transient_retry_s` (5 s in use); 0.3 s here keeps the test quick.
    admin = AdminApi("http://127.0.0.1:9070", transport=httpx.MockTransport(missing), transient_retry_s=0.3)
    assert admin.query_ready() is False
    assert len(asked) >= 2 and set(asked) == {"/query"}  # asked again before giving up, not once


def test_kill_invocation_patches_restates_kill():
    seen = []

    def handler(request):
        seen.append((request.method, request.url.path))
        return httpx.Response(200)

    admin_with(handler).kill_invocation("inv_1abc")
    assert seen == [("PATCH", "/invocations/inv_1abc/kill")]


def test_send_returns_the_invocation_id():
    def handler(request):
        assert request.url.path == "/WriterAgentRestate/run/send"
        assert request.headers["idempotency-key"] == "k1"
        return httpx.Response(202, json={"invocationId": "inv_42", "status": "Accepted"})

    assert ingress_with(handler).send({"prompt": "x"}, idempotency_key="k1") == "inv_42"


def test_output_while_running_is_an_http_error_with_status_470():
    ingress = ingress_with(lambda r: httpx.Response(470, text="not ready"))
    with pytest.raises(HttpError) as err:
        ingress.output("inv_1")
    assert err.value.status == 470


def test_connection_errors_are_told_apart_from_statuses():
    def refuse(request):
        raise httpx.ConnectError("connection refused", request=request)

    with pytest.raises(HttpError) as err:
        ingress_with(refuse).call({"prompt": "x"})
    assert err.value.status is None and "unreachable" in str(err.value)
    with pytest.raises(HttpError) as err:
        ingress_with(lambda r: httpx.Response(400, json={"message": "invalid request: prompt"})).call({})
    assert err.value.status == 400 and "invalid request: prompt" in str(err.value)
    assert ingress_with(refuse).healthy_ingress() is False


class FakeRun:
    def __init__(self, returncode=0, stdout="ok", stderr=""):
        self.calls = []
        self.result = (returncode, stdout, stderr)

    def __call__(self, argv, **kwargs):
        self.calls.append((argv, kwargs))
        code, out, err = self.result
        return subprocess.CompletedProcess(argv, code, out, err)


def test_cli_command_lines_match_the_howto():
    cli = RestateCli(binary="/opt/restate", admin_url="http://127.0.0.1:9070")  # type: ignore[arg-type]
    assert cli.register_argv("http://192.168.65.254:9080", use_http11=True, force=True) == [
        "/opt/restate",
        "deployments",
        "register",
        "http://192.168.65.254:9080",
        "-y",
        "--use-http1.1",
        "--force",
    ]
    assert cli.register_argv("http://127.0.0.1:9080") == [
        "/opt/restate",
        "deployments",
        "register",
        "http://127.0.0.1:9080",
        "-y",
    ]
    assert cli.describe_argv("inv_1") == ["/opt/restate", "invocations", "describe", "inv_1"]
    assert cli.list_argv() == ["/opt/restate", "invocations", "list"]
    assert cli.list_argv(include_completed=True)[-1] == "--all"


def test_cli_runs_with_the_admin_url_and_reports_failures():
    ok = FakeRun(stdout="completed with success")
    cli = RestateCli(binary="/opt/restate", admin_url="http://127.0.0.1:9070", run=ok)  # type: ignore[arg-type]
    assert cli.describe("inv_1") == "completed with success"
    assert ok.calls[0][1]["env"]["RESTATE_ADMIN_URL"] == "http://127.0.0.1:9070"
    bad = FakeRun(returncode=1, stdout="", stderr="Error: not found")
    cli = RestateCli(binary="/opt/restate", admin_url="http://127.0.0.1:9070", run=bad)  # type: ignore[arg-type]
    with pytest.raises(CommandError) as err:
        cli.describe("inv_1")
    assert err.value.returncode == 1 and "not found" in str(err.value) and "invocations describe" in str(err.value)


def test_benign_partition_errors_are_asked_again_real_errors_are_not():
    calls = []

    def handler(request):
        calls.append(1)
        if len(calls) == 1:
            return httpx.Response(500, text="partition 2 doesn't exist on this node, this is benign")
        return httpx.Response(200, json={"rows": [{"id": "inv_1"}]})

    assert admin_with(handler).query("SELECT id FROM sys_invocation") == [{"id": "inv_1"}]
    assert len(calls) == 2

    def broken(request):
        calls.append(1)
        return httpx.Response(500, text="syntax error at SELECT")

    calls.clear()
    with pytest.raises(HttpError, match="syntax error"):
        admin_with(broken).query("SELEC")
    assert len(calls) == 1


def test_journals_of_a_batch_is_one_query_grouped_by_invocation():
    seen = []

    def handler(request):
        seen.append(json.loads(request.content)["query"])
        rows = [
            {"id": "inv_a", "index": 0, "entry_type": "Command: Input"},
            {"id": "inv_a", "index": 1, "entry_type": "Command: Run", "name": "outline"},
        ]
        return httpx.Response(200, json={"rows": rows})

    journals = admin_with(handler).journals(["inv_a", "inv_b"])
    assert len(seen) == 1 and "WHERE id IN ('inv_a', 'inv_b') ORDER BY id, index" in seen[0]
    assert [r["index"] for r in journals["inv_a"]] == [0, 1]
    assert journals["inv_b"] == []  # asked for, no entries yet: present and empty


def test_deployments_are_registered_without_force_and_deleted_with_it():
    seen = []

    def handler(request):
        seen.append((request.method, request.url.path, dict(request.url.params), request.content))
        if request.method == "POST":
            return httpx.Response(201, json={"id": "dp_2", "services": [{"name": "WriterAgentRestate", "revision": 2}]})
        return httpx.Response(202)

    admin = admin_with(handler)
    assert admin.register_deployment("http://127.0.0.1:9081", use_http11=True)["id"] == "dp_2"
    admin.delete_deployment("dp_2")
    (post, _, _, body), delete = seen
    assert post == "POST" and json.loads(body) == {"uri": "http://127.0.0.1:9081", "use_http_11": True}
    assert delete[:3] == ("DELETE", "/deployments/dp_2", {"force": "true"})  # Restate 1.7 answers 501 without it


def test_resume_can_move_an_invocation_to_a_deployment_and_pause_is_accepted():
    seen = []

    def handler(request):
        seen.append((request.url.path, dict(request.url.params)))
        return httpx.Response(202 if request.url.path.endswith("/pause") else 200)

    admin = admin_with(handler)
    admin.pause("inv_1")
    admin.resume("inv_1", deployment="dp_1")
    admin.resume("inv_1")
    assert seen == [
        ("/invocations/inv_1/pause", {}),
        ("/invocations/inv_1/resume", {"deployment": "dp_1"}),
        ("/invocations/inv_1/resume", {}),
    ]
    with pytest.raises(ValueError, match="not a deployment id"):
        admin.resume("inv_1", deployment="dp_1/../x")


def test_resume_onto_another_deployment_while_running_carries_restates_refusal():
    message = "The invocation 'inv_1' is still running or the deployment id is not pinned yet"
    admin = admin_with(lambda r: httpx.Response(409, json={"message": message}))
    with pytest.raises(HttpError) as err:
        admin.resume("inv_1", deployment="dp_2")
    assert err.value.status == 409 and "still running" in err.value.body
