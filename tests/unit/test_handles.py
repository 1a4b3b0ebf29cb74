"""The handles a drill acts through (drillkit/handles.py), composed by the Stack: each names the very
component the Stack started, and nothing hands a drill the Stack itself (issue 20)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from drillkit.errors import DrillError
from drillkit.kit.frame import Drill
from drillkit.kit.pace import Pace
from drillkit.reports.record import DrillRecord
from tests.unit.test_records_ports_configs import _stack_on


def test_the_stack_hands_a_drill_its_own_components(tmp_path):
    stack = _stack_on(tmp_path, **{"runtime.backend": "native"})
    try:
        handles = stack.handles()
        assert handles.restate.admin is stack.admin and handles.restate.ingress is stack.ingress
        assert handles.restate.server is stack.server and handles.writer is stack.writer
        assert handles.target is None and handles.service is stack.writer
        assert handles.model.local is stack.model and handles.config is stack.config
        assert handles.model.base_url == stack.config.writer_model.base_url
        assert handles.restate.deployment_uri() == stack.deployment_uri()
        with pytest.raises(DrillError, match=r"runtime\.backend is native, not cluster"):
            _ = handles.cluster
        stub, tap = handles.model.stub(), handles.model.tap("eval-")
        assert stub.procs is stack.procs and tap.procs is stack.procs  # one process table: recorded, stopped
        assert tap.record.parent == stack.state.root / "llm-tap" and tap.record.name.startswith("eval-")
        handles.restate.remember_invocation("inv_1")
        assert stack.state.last_invocation() == "inv_1"
    finally:
        stack.close()


def test_a_cluster_drill_gets_the_nodes_and_moves_the_stacks_clients(tmp_path):
    stack = _stack_on(tmp_path, **{"runtime.backend": "cluster"})
    try:
        handles = stack.handles()
        assert handles.cluster is stack.cluster
        n3 = handles.cluster.node(3)
        handles.restate.point_at(n3.admin_url, n3.ingress_url)  # the survivor a node-loss drill moves to
        assert (stack.admin.base_url, stack.ingress.base_url) == (n3.admin_url, n3.ingress_url)
    finally:
        stack.close()


def test_a_drill_reads_its_handles_once_and_never_needs_the_stack_for_them():
    calls = []
    handles = SimpleNamespace(restate="R", writer="W", target=None, model="M", cluster="C", config="K")
    stack = SimpleNamespace(handles=lambda: calls.append(1) or handles)
    drill = Drill(stack, DrillRecord("crash", {}), Pace())  # type: ignore[arg-type]
    seen = (drill.restate, drill.writer, drill.target, drill.model, drill.cluster, drill.config)
    assert seen == ("R", "W", None, "M", "C", "K") and calls == [1]  # composed once per run
