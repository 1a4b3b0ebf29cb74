"""The drills' watchdog for real: a writer frozen (SIGSTOP) mid-invocation and never thawed by the scenario,
which then waits for completion on a poll no pace watches (the kind of wait the watchdog exists for).
With Restate's own timeouts (a minute of inactivity) nothing moves; the watchdog trips at the drill's
short `--deadline`, dumps Restate's rows and the frozen writer's stacks, ends the blocked scenario, and the
drill FAILs naming the dump. Evidence read from the dump file and the process table, not the record."""

from __future__ import annotations

import json
import time

from drillkit import config as drill_config
from drillkit.howto import howto_body
from drillkit.kit import actions, probes
from drillkit.kit.frame import Drill, run_drill
from drillkit.kit.watchdog import DUMP_FILE, STACKS_FILE
from drillkit.procs import proc_state
from drillkit.stack import Stack
from drillkit.waits import poll

from .conftest import make_config, our_live_processes

DEADLINE_S = 6.0


def frozen_and_forgotten(drill: Drill) -> None:
    writer = actions.running_writer(drill)
    actions.send(drill, howto_body())
    probes.wait_journal(drill, lambda rows: len(rows) >= 2, "the invocation's first journal entries")
    actions.freeze_writer(drill, writer)  # thawed only by the frame's cleanup
    poll(lambda: probes.invocation(drill), lambda row: row.get("status") == "completed", "completion", 600, 0.2)


def test_a_stuck_drill_is_ended_by_the_watchdog_with_restates_rows_and_the_stacks_dumped(tmp_path, project_state):
    stack = Stack(drill_config.load(make_config(tmp_path, project_state)))
    try:
        stack.up()
        started = time.monotonic()
        report = tmp_path / "report"
        record, path = run_drill(stack, "watchdog-probe", {}, frozen_and_forgotten, report, True, DEADLINE_S)
        took = time.monotonic() - started
        assert record.verdict == "FAIL", (path / "report.md").read_text()[:3000]
        dump_path = path / DUMP_FILE
        assert any(str(dump_path) in reason for reason in record.reasons()), record.reasons()
        dump = json.loads(dump_path.read_text())
        invocation = record.invocation_id
        assert dump["invocations"] == [invocation] and dump["after_fault"] is True
        assert [row["id"] for row in dump["sys_invocation"]] == [invocation]
        assert dump["sys_invocation"][0]["status"] == "running"  # Restate still waits on the frozen writer
        assert dump["sys_journal"] and all(row["id"] == invocation for row in dump["sys_journal"])
        assert isinstance(dump["sys_journal_events"], list)
        stacks = (path / STACKS_FILE).read_text()
        assert "process state T (stopped: SIGSTOP)" in stacks
        assert "py-spy dump" in stacks, stacks
        assert "Watchdog: the drill was stuck" in (path / "report.md").read_text()
        assert "ended" in " ".join(record.notes)  # the blocked poll was ended, not waited out
        assert took < 120, f"the watchdog took {took:.0f} s to end a drill with a {DEADLINE_S:g} s limit"
        writer = stack.writer.live()
        assert writer is not None and proc_state(writer.pid) != "T"  # thawed by the frame's cleanup
    finally:
        stack.down(purge=True)
        assert our_live_processes(stack) == []
        stack.close()
