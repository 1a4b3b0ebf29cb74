import json
import multiprocessing
import os

import pytest

from writer_service import faults
from writer_service.config import Faults
from writer_service.ledger import ExecutionLedger, read_ledger


def test_entries_and_attempt_counts_survive_a_new_process_view(tmp_path):
    path = tmp_path / "ledger.jsonl"
    first = ExecutionLedger(path)
    first.record("inv_a", "save_report", 1, "error", 0.0, "boom")
    first.record("inv_a", "save_report", 2, "ok", 0.0)
    first.record("inv_b", "outline", 1, "ok", 0.0)
    restarted = ExecutionLedger(path)  # as after a process restart: state only on disk
    assert restarted.attempts_so_far("inv_a", "save_report") == 2
    assert restarted.attempts_so_far("inv_a", "outline") == 0
    entries = restarted.entries("inv_a")
    assert [(e.step, e.attempt, e.outcome) for e in entries] == [("save_report", 1, "error"), ("save_report", 2, "ok")]
    assert entries[0].pid == os.getpid() and entries[0].error == "boom"


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


def _entry(step, end, duration_ms, outcome="ok"):
    from writer_service.ledger import LedgerEntry

    return LedgerEntry(end, "inv_a", step, 1, 1, outcome, duration_ms)


def test_reexecution_is_judged_against_restates_journal():
    from drillkit.evidence import reexecuted_after_journaled

    journaled = {"outline": 100.0, "section:1": 101.0}
    replayed = [_entry("outline", 99.9, 500), _entry("section:1", 100.9, 800)]
    assert reexecuted_after_journaled(replayed, journaled) == []
    # section:1's body returned (ledger ok at 100.9) but ran again from 102: it had been journaled at 101
    rerun = [*replayed, _entry("section:1", 102.5, 400)]
    assert reexecuted_after_journaled(rerun, journaled) == ["section:1"]
    # a step never journaled (the kill came before Restate got its result) may run again
    assert (
        reexecuted_after_journaled([_entry("section:2", 103.0, 300), _entry("section:2", 105.0, 300)], journaled) == []
    )


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
    other.record("inv_a", "summary", 1, "error", 0.0, "x")
    assert mine.attempts_so_far("inv_a", "summary") == 1  # seen without re-reading the whole file
    with open(path, "ab") as handle:
        handle.write(b'{"time": 1, "invocation_id": "inv_a", "step": "summary"')  # a line being written
    assert mine.attempts_so_far("inv_a", "summary") == 1
    with open(path, "ab") as handle:
        handle.write(b', "attempt": 2, "pid": 1, "outcome": "ok", "duration_ms": 1}\n')
    assert mine.attempts_so_far("inv_a", "summary") == 2
