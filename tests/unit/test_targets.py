"""A configured target: its config, its body's nonce, and the evidence read without its cooperation."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from drillkit import catalog
from drillkit.components.llm_tap import TapRequest, fingerprint
from drillkit.components.target import holds_placeholder, new_nonce, with_nonce
from drillkit.config import validate_mapping
from drillkit.drills import any_target
from drillkit.errors import ConfigError
from drillkit.evidence import JournalStep, run_point

BASE = yaml.safe_load((Path(__file__).resolve().parents[2] / "configs" / "local.yaml").read_text())
TARGET = {"command": ["python", "x.py"], "port": 9085, "service": "Notes", "handler": "summarize", "body": {}}


def config(**target):
    return validate_mapping({**BASE, "target": {**TARGET, **target}}, "t.yaml")


def test_a_target_is_started_by_command_or_reached_by_uri_never_both():
    assert config().target.startable
    assert not config(command=None, uri="http://127.0.0.1:9").target.startable
    for bad, said in [
        ({"uri": "http://x"}, "exactly one of"),
        ({"command": None}, "exactly one of"),
        ({"port": None}, "`port` is required"),
        ({"command": None, "uri": "ftp://x"}, "http:// or https://"),
        ({"service": ""}, "target.service"),
        ({"bogus": 1}, "bogus"),
    ]:
        with pytest.raises(ConfigError) as caught:
            config(**bad)
        assert "t.yaml" in str(caught.value) and said in str(caught.value)


def test_the_nonce_is_put_in_every_string_that_asks_for_it():
    nonce = new_nonce()
    assert nonce.startswith("drill-") and len(nonce) == 18
    body = {"topic": "rivers {{nonce}}", "list": ["{{nonce}}", 3], "n": 1}
    assert with_nonce(body, nonce) == {"topic": f"rivers {nonce}", "list": [nonce, 3], "n": 1}
    assert holds_placeholder(body) and not holds_placeholder({"topic": "rivers"})


def test_kill_points_are_runs_of_the_journal():
    assert run_point("run:2") == 2 and run_point("3") == 3
    for bad in ("section:2", "run:0", "run:x", ""):
        with pytest.raises(ConfigError):
            run_point(bad)


def step(index, name, started, completed, result="Success"):
    iso = "2026-12-03T08:00:{:06.3f}Z".format
    return JournalStep(
        name, index, index, iso(started), completed is not None, result, iso(completed) if completed else None
    )


def request(at, body, end=None, outcome="ok"):
    base = 1796284800.0  # 2026-12-03T08:00:00Z
    return TapRequest(
        "r",
        base + at,
        "POST",
        "/v1/chat/completions",
        None,
        None,
        None,
        "m",
        base + (end or at + 0.5),
        fingerprint=fingerprint(body),
        outcome=outcome,
    )


def test_requests_go_to_the_run_whose_window_they_arrived_in():
    steps = [step(1, "ask", 1.0, 2.0), step(3, "ask", 2.1, 3.0), step(5, "store", 3.1, 3.2)]
    a, b = request(1.01, b'{"q": 1}', end=2.001), request(2.0005, b'{"q": 2}', end=2.9)  # b arrived before Run 3
    made = any_target.requests_by_run(steps, [a, b])
    assert made == {1: [a], 3: [b], 5: []}
    assert [s["model_requests"] for s in any_target.journal_shape(steps, [a, b])] == [1, 1, 0]


def test_a_finished_run_asked_again_is_finished_work_done_again():
    done = [step(1, "ask", 1.0, 2.0)]
    first, cut = request(1.1, b'{"q": 1}'), request(2.2, b'{"q": 2}', outcome="client_gone")
    retried_in_flight = request(4.0, b'{"q": 2}')
    assert any_target.rerequested_after_journaled(done, [first, cut, retried_in_flight]) == []
    asked_again = request(4.0, b'{"q" : 1}')  # the same JSON, other spacing: the same question
    assert any_target.rerequested_after_journaled(done, [first, cut, asked_again]) == [
        "Run 1 (ask): asked again 1x after its result was journaled"
    ]


def test_the_journal_must_keep_every_result_it_held():
    before = [step(1, "ask", 1.0, 2.0)]
    assert any_target.changed_results(before, [step(1, "ask", 1.0, 2.0), step(3, "ask", 2.1, 3.0)]) == []
    assert any_target.changed_results(before, [step(1, "ask", 1.0, 2.5)]) == ["Run 1 (ask)"]
    assert any_target.changed_results(before, []) == ["Run 1 (ask)"]


def test_drills_that_cannot_apply_to_a_target_say_why(tmp_path):
    from drillkit.stack import Stack

    data = {**BASE, "runtime": {**BASE["runtime"], "state_dir": str(tmp_path)}}
    data["target"] = {**TARGET, "command": None, "uri": "http://127.0.0.1:9"}
    path = tmp_path / "t.yaml"
    path.write_text(yaml.safe_dump(data))
    from drillkit.config import load

    stack = Stack(load(path))
    try:
        with pytest.raises(catalog.NotApplicable, match="no fault hook"):
            spec = catalog.resolve(catalog.tool_error(2), stack)
            spec.check(stack.handles())
        spec = catalog.resolve(catalog.crash(), stack)
        assert spec.parameters["at"] == "run:2" and spec.for_target
        with pytest.raises(ConfigError, match="cannot kill and restart it"):
            spec.check(stack.handles())
        with pytest.raises(catalog.NotApplicable, match="pause"):
            catalog.resolve(catalog.timeout("pause"), stack)
        assert catalog.resolve(catalog.server_crash(), stack).check(stack.handles()) is None  # runs on the journal
    finally:
        stack.close()


def test_a_server_that_exits_is_not_waited_for():
    """restate-server that dies at start (a port taken, a bad setting) ends the readiness wait at once."""
    from types import SimpleNamespace

    from drillkit.components.restate_server import ServerExited, wait_ready

    admin = SimpleNamespace(healthy_admin=lambda: False, base_url="http://127.0.0.1:9")
    with pytest.raises(ServerExited):  # not WaitTimeout: it did not wait out the 30 s
        wait_ready(admin, SimpleNamespace(), timeout_s=30, alive=lambda: False)  # type: ignore[arg-type]
