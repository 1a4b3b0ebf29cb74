"""StepRunner against a fake Restate context: executed vs replayed, ledger lines, error classification."""

import asyncio
from datetime import timedelta
from types import SimpleNamespace

import httpx2
import openai
import pytest
from restate import TerminalError

from writer_service.agent import StepFailed, StepRunner, WriterRuntime, build_service, run_options
from writer_service.config import Faults, StepRetry, WriterConfig
from writer_service.faults import InjectedToolError
from writer_service.ledger import ExecutionLedger, executions
from writer_service.llm import NoSlot, StepAttempt


class FakeContext:
    """Runs a step body unless its name is in `journal` (a replay), like ctx.run_typed."""

    def __init__(self, journal=None):
        self.journal = dict(journal or {})
        self.options = {}

    def request(self):
        return SimpleNamespace(id="inv_test")

    def run_typed(self, name, action, options):
        self.options[name] = options

        async def run():
            if name in self.journal:
                return self.journal[name]
            value = await action()
            self.journal[name] = value
            return value

        return run()


def make(tmp_path, faults=None, journal=None):
    cfg = WriterConfig.from_mapping({"writer_model": {"base_url": "http://127.0.0.1:1/v1", "model": "m"}})
    ledger = ExecutionLedger(tmp_path / "ledger.jsonl")
    ctx = FakeContext(journal)
    return StepRunner(ctx, WriterRuntime(cfg, llm=None, ledger=ledger), faults or Faults()), ledger, ctx  # type: ignore[arg-type]


async def _value(call):
    return {"attempt": call.attempt}


def test_executed_step_is_recorded_once(tmp_path, caplog):
    runner, ledger, _ = make(tmp_path)
    caplog.set_level("INFO")
    assert asyncio.run(runner.step("outline", _value, StepRetry())) == {"attempt": 1}
    start, end = ledger.entries("inv_test")
    assert (start.step, start.attempt, start.outcome) == ("outline", 1, "started")
    assert (end.step, end.attempt, end.outcome) == ("outline", 1, "ok")
    [run] = executions(ledger.entries())
    assert (run.step, run.attempt, run.outcome) == ("outline", 1, "ok")
    assert "executed step=outline invocation=inv_test attempt=1" in caplog.text


def test_the_action_learns_its_invocation_step_and_attempt(tmp_path):
    runner, _, _ = make(tmp_path)
    seen = []

    async def action(call):
        seen.append(call)
        return call.headers()

    headers = asyncio.run(runner.step("section:2", action, StepRetry()))
    assert seen == [StepAttempt("inv_test", "section:2", 1)]
    assert headers == {"X-Restate-Invocation-Id": "inv_test", "X-Writer-Step": "section:2", "X-Writer-Attempt": "1"}


def test_the_run_after_a_kill_mid_step_is_attempt_2(tmp_path):
    runner, ledger, _ = make(tmp_path)
    ledger.start("inv_test", "section:1", 1)  # an earlier process started the step and was SIGKILLed
    assert asyncio.run(runner.step("section:1", _value, StepRetry())) == {"attempt": 2}
    assert [(x.attempt, x.outcome) for x in executions(ledger.entries())] == [(1, None), (2, "ok")]


def test_replayed_step_does_not_run_or_write(tmp_path, caplog):
    runner, ledger, _ = make(tmp_path, journal={"outline": {"from": "journal"}})
    caplog.set_level("INFO")
    assert asyncio.run(runner.step("outline", _value, StepRetry())) == {"from": "journal"}
    assert ledger.entries() == []
    assert "replayed step=outline invocation=inv_test" in caplog.text


def test_terminal_llm_error_becomes_terminal_error(tmp_path):
    runner, ledger, _ = make(tmp_path)
    request = httpx2.Request("POST", "http://llm")

    async def unauthorized(attempt):
        raise openai.APIStatusError("bad key", response=httpx2.Response(401, request=request), body=None)

    with pytest.raises(TerminalError) as err:
        asyncio.run(runner.step("summary", unauthorized, StepRetry()))
    assert "summary" in err.value.message and "401" in err.value.message
    [run] = executions(ledger.entries())
    assert run.outcome == "error" and "401" in (run.error or "")


def test_transient_error_is_raised_for_restate_to_retry(tmp_path):
    runner, ledger, _ = make(tmp_path)
    request = httpx2.Request("POST", "http://llm")

    async def down(attempt):
        raise openai.APIConnectionError(request=request)

    for expected_attempt in (1, 2):
        with pytest.raises(StepFailed, match=f"section:1 attempt {expected_attempt}: LLM unreachable") as err:
            asyncio.run(runner.step("section:1", down, StepRetry()))
        assert isinstance(err.value.__cause__, openai.APIConnectionError)
        assert ledger.entries()[-1].attempt == expected_attempt


def test_tool_error_fault_counts_attempts_from_the_ledger(tmp_path):
    faults = Faults.model_validate({"tool_error": {"fail_first": 2}})
    runner, ledger, _ = make(tmp_path, faults=faults)
    for _ in range(2):
        with pytest.raises(StepFailed) as err:
            asyncio.run(runner.step("save_report", _value, StepRetry()))
        assert isinstance(err.value.__cause__, InjectedToolError)
    # a new runner (as after a restart) still knows two attempts failed
    runner2, _, _ = make(tmp_path, faults=faults)
    assert asyncio.run(runner2.step("save_report", _value, StepRetry())) == {"attempt": 3}
    assert [x.outcome for x in executions(ledger.entries())] == ["error", "error", "ok"]


def test_run_options_from_config():
    options = run_options(StepRetry(max_attempts=3, initial_interval_ms=100, max_interval_ms=2000, factor=1.5))
    assert options.max_attempts == 3
    assert options.initial_retry_interval.total_seconds() == 0.1
    assert options.max_retry_interval.total_seconds() == 2
    assert options.retry_interval_factor == 1.5
    unset = run_options(StepRetry())
    assert unset.max_attempts is None and unset.initial_retry_interval is None  # server policy applies


def test_a_step_cancelled_by_the_sdk_is_closed_in_the_ledger(tmp_path):
    # Restate ending an attempt (abort timeout) makes the SDK cancel the running step: the execution
    # ended there, and the ledger must not leave it open as if the process had died.
    runner, ledger, _ = make(tmp_path)

    async def forever(call):
        await asyncio.Event().wait()

    async def scenario():
        task = asyncio.create_task(runner.step("section:1", forever, StepRetry()))
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(scenario())
    [run] = executions(ledger.entries())
    assert (run.step, run.outcome) == ("section:1", "error")
    assert run.error is not None and run.error.startswith("cancelled")


def test_a_step_that_got_no_model_slot_is_retried_and_says_nothing_was_sent(tmp_path):
    runner, ledger, _ = make(tmp_path)

    async def no_slot(call):
        raise NoSlot("no model slot came free within 1 s (1 in use, 7 waiting); nothing was sent")

    with pytest.raises(StepFailed, match=r"outline attempt 1: LLM not asked: no model slot"):
        asyncio.run(runner.step("outline", no_slot, StepRetry()))
    [run] = executions(ledger.entries())
    assert run.outcome == "error" and run.error is not None and run.error.startswith("LLM not asked")


def test_the_service_declares_restates_timeouts_from_the_config(tmp_path):
    cfg = WriterConfig.from_mapping(
        {
            "writer_model": {"base_url": "http://127.0.0.1:1/v1", "model": "m", "timeout_s": 4},
            "service": {"inactivity_timeout_s": 2, "abort_timeout_s": 4},
        }
    )
    service = build_service(WriterRuntime(cfg, llm=None, ledger=None))  # type: ignore[arg-type]
    assert service.inactivity_timeout == timedelta(seconds=2)
    assert service.abort_timeout == timedelta(seconds=4)
