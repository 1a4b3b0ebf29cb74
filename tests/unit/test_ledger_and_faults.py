import json
import multiprocessing
import os

import pytest

from writer_service import faults
from writer_service.config import Faults
from writer_service.ledger import ExecutionLedger, LedgerEntry, LedgerFollower, executions, read_ledger


def _run(ledger, invocation, step, outcome, error=None):
    """One execution as the step runner writes it: a start line, then an end line."""
    attempt = ledger.attempts_so_far(invocation, step) + 1
    ledger.start(invocation, step, attempt)
    ledger.record(invocation, step, attempt, outcome, 0.0, error)


def test_entries_and_attempt_counts_survive_a_new_process_view(tmp_path):
    path = tmp_path / "ledger.jsonl"
    first = ExecutionLedger(path)
    _run(first, "inv_a", "save_report", "error", "boom")
    _run(first, "inv_a", "save_report", "ok")
    _run(first, "inv_b", "outline", "ok")
    restarted = ExecutionLedger(path)  # as after a process restart: state only on disk
    assert restarted.attempts_so_far("inv_a", "save_report") == 2
    assert restarted.attempts_so_far("inv_a", "outline") == 0
    entries = restarted.entries("inv_a")
    assert [(e.step, e.attempt, e.outcome) for e in entries] == [
        ("save_report", 1, "started"),
        ("save_report", 1, "error"),
        ("save_report", 2, "started"),
        ("save_report", 2, "ok"),
    ]
    assert entries[1].pid == os.getpid() and entries[1].error == "boom"
    assert [(x.attempt, x.outcome, x.error) for x in executions(entries)] == [(1, "error", "boom"), (2, "ok", None)]


def test_a_killed_execution_is_started_without_an_end_and_counts_as_an_attempt(tmp_path):
    path = tmp_path / "ledger.jsonl"
    doomed = ExecutionLedger(path)
    doomed.start("inv_a", "section:2", doomed.attempts_so_far("inv_a", "section:2") + 1)  # then SIGKILL
    restarted = ExecutionLedger(path)
    assert restarted.attempts_so_far("inv_a", "section:2") == 1
    _run(restarted, "inv_a", "section:2", "ok")
    runs = executions(read_ledger(path))
    assert [(x.attempt, x.outcome, x.ended is None) for x in runs] == [(1, None, True), (2, "ok", False)]
    assert runs[1].started >= runs[0].started and runs[1].duration_ms is not None


def test_executions_pair_lines_by_invocation_step_attempt_and_pid():
    lines = [
        LedgerEntry(10.0, "inv_a", "outline", 1, 7, "started", 0.0),
        LedgerEntry(10.5, "inv_b", "outline", 1, 7, "started", 0.0),
        LedgerEntry(11.0, "inv_b", "outline", 1, 7, "ok", 500.0),
        LedgerEntry(12.0, "inv_a", "outline", 1, 7, "error", 2000.0, "LLM timeout"),
        LedgerEntry(13.0, "inv_a", "outline", 2, 8, "started", 0.0),  # a new process, never finished
        LedgerEntry(20.0, "inv_c", "summary", 1, 7, "ok", 1000.0),  # an end without a start: implied at 19
    ]
    runs = executions(lines)
    assert [(x.invocation_id, x.attempt, x.started, x.ended, x.outcome) for x in runs] == [
        ("inv_a", 1, 10.0, 12.0, "error"),
        ("inv_b", 1, 10.5, 11.0, "ok"),
        ("inv_a", 2, 13.0, None, None),
        ("inv_c", 1, 19.0, 20.0, "ok"),
    ]
    assert runs[0].error == "LLM timeout"


def test_torn_last_line_is_skipped(tmp_path):
    path = tmp_path / "ledger.jsonl"
    ExecutionLedger(path).record("inv_a", "outline", 1, "ok", 0.0)
    with open(path, "a") as handle:
        handle.write('{"time": 1, "invoc')
    assert len(read_ledger(path)) == 1


def _append_many(path: str, worker: int) -> None:
    ledger = ExecutionLedger(__import__("pathlib").Path(path))
    for i in range(200):
        ledger.record(f"inv_{worker}", f"section:{i}", 1, "ok", 0.0, "x" * 300)


def test_concurrent_appends_never_interleave(tmp_path):
    path = tmp_path / "ledger.jsonl"
    procs = [multiprocessing.Process(target=_append_many, args=(str(path), w)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    lines = path.read_text().splitlines()
    assert len(lines) == 800
    assert all(json.loads(line)["outcome"] == "ok" for line in lines)


def test_tool_error_fails_first_n_attempts_only():
    f = Faults.model_validate({"tool_error": {"fail_first": 2}})
    for attempt in (1, 2):
        with pytest.raises(faults.InjectedToolError, match=f"attempt {attempt}"):
            faults.maybe_fail_tool(f, "save_report", attempt)
    faults.maybe_fail_tool(f, "save_report", 3)
    faults.maybe_fail_tool(f, "outline", 1)  # other steps are untouched


def test_crash_only_on_the_named_steps_first_attempt():
    f = Faults.model_validate({"crash": {"during_step": "section:2"}})
    assert faults.crash_due(f, "section:2", 1)
    assert not faults.crash_due(f, "section:2", 2)
    assert not faults.crash_due(f, "section:1", 1)
    assert not faults.crash_due(Faults(), "section:2", 1)


def _run_at(step, started, outcome="ok", attempt=1):
    from writer_service.ledger import Execution

    return Execution("inv_a", step, attempt, 1, started, started + 0.3, outcome, 300.0)


def test_reexecution_is_judged_against_restates_journal():
    from drillkit.evidence import attempt_counts, ok_counts, reexecuted_after_journaled

    journaled = {"outline": 100.0, "section:1": 101.0}
    replayed = [_run_at("outline", 99.4), _run_at("section:1", 100.1)]
    assert reexecuted_after_journaled(replayed, journaled) == []
    # section:1's body returned before 101 but ran again from 102: it had been journaled at 101
    rerun = [*replayed, _run_at("section:1", 102.2, attempt=2)]
    assert reexecuted_after_journaled(rerun, journaled) == ["section:1"]
    # a step never journaled (the kill came before Restate got its result) may run again
    assert reexecuted_after_journaled([_run_at("section:2", 102.7), _run_at("section:2", 104.7)], journaled) == []
    # an execution killed before it ended counts as an attempt, not as an ok
    killed = [_run_at("section:2", 102.7), _run_at("section:2", 104.7, outcome=None, attempt=2)]
    assert attempt_counts(killed)["section:2"] == 2 and ok_counts(killed)["section:2"] == 1


NOTIFICATION_1 = '{"Notification":{"ty":{"Completion":"Run"},"id":{"CompletionId":1},"result":"Success"}}'


def test_journaled_completions_from_journal_rows():
    from drillkit.evidence import journaled_completions

    rows = [
        {
            "entry_type": "Command: Run",
            "name": "outline",
            "index": 1,
            "entry_lite_json": '{"Command":{"Run":{"completion_id":1,"name":"outline"}}}',
            "appended_at": "2026-11-27T06:40:34.492Z",
        },
        {
            "entry_type": "Notification: Run",
            "index": 2,
            "entry_lite_json": NOTIFICATION_1,
            "appended_at": "2026-11-27T06:40:35.556Z",
        },
        {
            "entry_type": "Command: Run",
            "name": "section:1",
            "index": 3,
            "entry_lite_json": '{"Command":{"Run":{"completion_id":2,"name":"section:1"}}}',
            "appended_at": "2026-11-27T06:40:35.558Z",
        },
    ]
    done = journaled_completions(rows)
    assert list(done) == ["outline"]
    assert abs(done["outline"] - 1795761635.556) < 0.001


def test_attempt_counts_follow_appends_from_other_processes(tmp_path):
    path = tmp_path / "ledger.jsonl"
    mine, other = ExecutionLedger(path), ExecutionLedger(path)
    assert mine.attempts_so_far("inv_a", "summary") == 0
    other.start("inv_a", "summary", 1)
    assert mine.attempts_so_far("inv_a", "summary") == 1  # seen without re-reading the whole file
    other.record("inv_a", "summary", 1, "error", 0.0, "x")
    assert mine.attempts_so_far("inv_a", "summary") == 1  # an end line is not another attempt
    with open(path, "ab") as handle:
        handle.write(b'{"time": 1, "invocation_id": "inv_a", "step": "summary"')  # a line being written
    assert mine.attempts_so_far("inv_a", "summary") == 1
    with open(path, "ab") as handle:
        handle.write(b', "attempt": 2, "pid": 1, "outcome": "started", "duration_ms": 0}\n')
    assert mine.attempts_so_far("inv_a", "summary") == 2


def test_executions_follower_reads_only_new_lines_of_its_invocation(tmp_path):
    from drillkit.components.writer import ExecutionsFollower

    path = tmp_path / "ledger.jsonl"
    ledger = ExecutionLedger(path)
    ledger.append(LedgerEntry(1.0, "inv_other", "outline", 1, 7, "started", 0.0))
    ledger.append(LedgerEntry(2.0, "inv_1", "outline", 1, 11, "started", 0.0))
    follower = ExecutionsFollower(LedgerFollower(path), "inv_1")
    [running] = follower.update()
    assert (running.step, running.pid, running.outcome) == ("outline", 11, None)
    ledger.append(LedgerEntry(2.5, "inv_1", "outline", 1, 11, "ok", 500.0))
    with open(path, "ab") as handle:
        handle.write(b'{"time": 3.0, "invocation_id": "inv_1", "st')  # a line still being written
    [done] = follower.update()
    assert (done.outcome, done.ended) == ("ok", 2.5)
    assert follower.update() == [done]  # nothing new: the torn line waits for its end


def test_appended_lines_returns_only_whole_new_lines(tmp_path):
    from writer_service.jsonl import AppendedLines

    path = tmp_path / "record.jsonl"
    lines = AppendedLines(path)
    assert lines.read() == b""  # no file yet
    path.write_bytes(b'{"a": 1}\n{"b": 2')  # the second line is still being written
    assert lines.read() == b'{"a": 1}\n'
    with open(path, "ab") as handle:
        handle.write(b'}\n{"c": 3}\n')
    assert lines.read() == b'{"b": 2}\n{"c": 3}\n'
    assert lines.read() == b""
