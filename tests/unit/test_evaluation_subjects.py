"""`inv evaluate` on a configured target: what it needs from the config, and the evidence it reads
without the service's help (side-effect files by nonce, the code criterion's stated parts)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from drillkit.components.target import TargetService, new_nonce
from drillkit.config import PROJECT_ROOT, load, validate_mapping
from drillkit.errors import ConfigError
from drillkit.evaluation import decision, subjects

BASE = yaml.safe_load((PROJECT_ROOT / "configs" / "local.yaml").read_text())
TARGET = {
    "command": ["python", "x.py"],
    "port": 9085,
    "service": "Notes",
    "handler": "summarize",
    "body": {"topic": "rivers {{nonce}}"},
    "effects_dir": "/tmp/notes",
    "baseline": {"command": ["python", "plain.py"], "port": 9095},
}


def service(**target) -> TargetService:
    config = validate_mapping({**BASE, "target": {**TARGET, **target}}, "t.yaml")
    return TargetService(config, SimpleNamespace(log_file=lambda name: Path("/tmp") / name), None)  # type: ignore[arg-type]


def test_a_target_without_baseline_effects_dir_or_nonce_is_refused_naming_the_field():
    assert subjects.require_evaluable(service(), "t.yaml").port == 9095
    for change, field in [
        ({"baseline": None}, "target.baseline"),
        ({"effects_dir": None}, "target.effects_dir"),
        ({"body": {"topic": "rivers"}}, "target.body"),
    ]:
        with pytest.raises(ConfigError) as caught:
            subjects.require_evaluable(service(**change), "t.yaml")
        assert "t.yaml" in str(caught.value) and field in str(caught.value)


def test_the_baseline_section_is_checked_like_the_rest_of_the_config():
    with pytest.raises(ConfigError) as caught:
        validate_mapping({**BASE, "target": {**TARGET, "baseline": {"command": [], "port": 9095}}}, "t.yaml")
    assert "target.baseline.command" in str(caught.value)


def test_side_effects_are_the_files_holding_the_requests_nonce(tmp_path):
    subject = object.__new__(subjects.ConfiguredTarget)
    subject.effects_dir = tmp_path
    mine, other = new_nonce(), new_nonce()
    request = subjects.Request("k", {}, mine)
    assert subject.effects(request, "k", None, completed=True) == subjects.Effects(0, 1)  # completed, no file
    (tmp_path / "a.md").write_text(f"<!-- {mine} -->\nreport")
    (tmp_path / "b.md").write_text(f"<!-- {other} -->\nreport")
    assert subject.effects(request, "k", None, completed=True) == subjects.Effects(0, 0)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "c.md").write_text(f"<!-- {mine} -->\nanother report")
    assert subject.effects(request, "k", None, completed=True) == subjects.Effects(1, 0)


def test_code_parts_are_file_or_file_function():
    assert subjects.parts(["a.py", "b.py:f"]) == (("a.py", None), ("b.py", "f"))


def test_the_agents_writer_states_its_code_parts_and_they_exist():
    target = load(str(PROJECT_ROOT / "configs" / "agents-writer.yaml")).target
    assert target is not None and target.baseline is not None and target.effects_dir is not None
    durable, baseline = decision.durability_lines(
        (subjects.parts(target.baseline.durable_code), subjects.parts(target.baseline.baseline_code))
    )
    assert durable > 0 and baseline > 0  # every part names a top-level function that exists


def test_a_status_the_tap_answered_alone_is_not_a_model_request_spent():
    from drillkit.components.llm_tap import TapRequest
    from drillkit.evaluation.modes import Outcome, Pending
    from drillkit.evaluation.runner import Evaluation, Evaluator

    def tapped(number: int, fault: str | None) -> TapRequest:
        return TapRequest(f"r{number}", 0.0, "POST", "/v1/chat/completions", "k", None, None, None, fault=fault)

    class Seen:
        def model_requests(self, request, key):
            down = replace(tapped(6, None), outcome="upstream_error", status=502)  # the model was not there
            return [tapped(1, None), tapped(2, "500"), tapped(3, "429"), tapped(4, "truncated"), tapped(5, None), down]

        def effects(self, request, key, output, completed):
            return subjects.Effects(0, 0)

        def min_requests(self):
            return 3

    evaluator = object.__new__(Evaluator)
    evaluator.subject = Seen()
    evaluator.result = Evaluation()
    request = subjects.Request("k", {}, "k")
    run = evaluator.measure(
        "llm-5xx", SimpleNamespace(name="durable"), Pending("k", {}, 0.0, request), Outcome(True, 1.0, {})
    )
    assert run.model_requests == 3  # the truncated answer came from the model; the 500 and 429 did not


def test_evaluate_target_names_a_reference_config_and_is_not_given_with_config(capsys, tmp_path, monkeypatch):
    from tasks.evaluate import TARGETS
    from tests.unit.test_tasks import run_inv

    assert all((PROJECT_ROOT / path).is_file() for path in TARGETS.values())
    monkeypatch.chdir(tmp_path)
    assert run_inv("evaluate", "--target", "agents", "--config", "configs/local.yaml") == 2
    assert capsys.readouterr().err.startswith("error: give --target or --config, not both")
    assert run_inv("evaluate", "--target", str(tmp_path / "nowhere.yaml")) == 2
    assert "nowhere.yaml" in capsys.readouterr().err


def test_the_durable_wait_rides_out_a_restarting_server():
    """The server-crash fault restarts restate-server while the run waits for its row: an unreachable admin
    API is the fault itself, not the end of the run (the full evaluation had all three runs inconclusive)."""
    from drillkit.errors import HttpError
    from drillkit.evaluation.modes import Durable, Pending

    answers = iter(
        [
            HttpError("POST", "http://127.0.0.1:9070/query", None, "ConnectError"),
            {"status": "running"},
            {"status": "completed", "completion_result": "success"},
        ]
    )

    def invocation(_id):
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    stack = SimpleNamespace(
        admin=SimpleNamespace(invocation=invocation), ingress=SimpleNamespace(output=lambda _id: {"output_path": "x"})
    )
    durable = Durable(stack, subject=None)  # type: ignore[arg-type]
    outcome = durable.finish(Pending("inv_1", {}, 0.0, subjects.Request("k", {}, "k")), deadline_s=30)
    assert outcome.completed and outcome.output == {"output_path": "x"}
