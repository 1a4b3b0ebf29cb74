"""drill.stuck for real: the writer frozen (SIGSTOP) with a step waiting on the held stub model; Restate's
short inactivity and abort timeouts for the service end the attempt, the thawed writer completes it.
Afterwards the writer serves on its own config and Restate holds its own timeouts for the service again."""

from __future__ import annotations

import httpx

from drillkit import catalog
from drillkit import config as drill_config
from drillkit.drills.stuck import ABORT_S, HUNG_STEP, INACTIVITY_S
from drillkit.procs import proc_state
from drillkit.stack import Stack

from .conftest import make_config, our_live_processes


def service_timeouts(stack: Stack) -> tuple[str, str]:
    info = httpx.get(f"{stack.config.runtime.admin_url}/services/WriterAgentRestate", timeout=10).json()
    return str(info.get("inactivity_timeout")), str(info.get("abort_timeout"))


def test_a_frozen_writer_is_aborted_by_restate_and_completes_after_the_thaw(tmp_path, project_state):
    stack = Stack(drill_config.load(make_config(tmp_path, project_state)))
    try:
        stack.up()
        own = service_timeouts(stack)
        record, path = catalog.run(stack, catalog.stuck(), keep_up=True)
        assert record.verdict == "PASS", (path / "report.md").read_text()[:4000]
        aborted = next(e for e in record.expectations if e.name.startswith("Restate aborted the attempt"))
        assert aborted.passed and "abort timeout" in aborted.detail  # Restate's own words for the attempt
        events = [e.event for e in record.timeline]
        assert events.index("frozen") < events.index("thawed") < events.index("completed")
        writer = stack.writer.live()
        assert writer is not None and proc_state(writer.pid) != "T"  # not left frozen
        # Given back: the writer's own Restate timeouts, not the drill's short ones.
        assert service_timeouts(stack) == own
        assert own == ("1m", "10m") != (f"{INACTIVITY_S:g}s", f"{ABORT_S:g}s")  # configs/local.yaml's
    finally:
        stack.down(purge=True)
        assert our_live_processes(stack) == []
        stack.close()


def test_a_hung_step_is_aborted_by_restate_asked_again_and_completed(tmp_path, project_state):
    """--mode step-hang: the writer alive, its section:1 step blocked on a model answer trickling in. Checked
    from the tap's record and Restate's row in journal.json, not only from the drill's own verdict."""
    stack = Stack(drill_config.load(make_config(tmp_path, project_state)))
    try:
        stack.up()
        own = service_timeouts(stack)
        record, path = catalog.run(stack, catalog.stuck("step-hang"), keep_up=True)
        assert record.verdict == "PASS", (path / "report.md").read_text()[:4000]
        aborted = next(e for e in record.expectations if e.name.startswith("Restate aborted the attempt"))
        assert "abort timeout" in aborted.detail  # Restate's own words for the attempt it ended
        requests = [r for r in record.evidence["tap_requests"] if r["step"] == HUNG_STEP]
        assert [r["fault"] for r in requests] == ["slow", None]  # the hung one, then the retry's, answered
        assert requests[0]["outcome"] == "client_gone" and requests[1]["status"] == 200
        assert record.evidence["invocation"]["status"] == "completed"
        assert service_timeouts(stack) == own  # given back
    finally:
        stack.down(purge=True)
        assert our_live_processes(stack) == []
        stack.close()
