"""drill.soak without a stack: the seeded schedule, the quorum rule, the per-kind recovery table, the
placement test, the exactly-once split (a deposed leader's window), and report.md's section."""

from __future__ import annotations

import itertools
from types import SimpleNamespace

import pytest

from drillkit import catalog
from drillkit.drills.soak import check_soak
from drillkit.errors import DrillError
from drillkit.flags import FlagError
from drillkit.kit import exactly_once, soak_checks
from drillkit.kit.soak_plan import (
    KINDS,
    NODE_KINDS,
    check_quorum,
    nodes_away_at_once,
    parse_kinds,
    placed,
    plan,
    recovery_table,
    tolerated_away,
)
from drillkit.reports.record import soak_sections

# -- the schedule -------------------------------------------------------------------------------------------


def test_the_same_seed_plans_the_same_faults_and_another_seed_others():
    assert plan(1, 180, KINDS, 3) == plan(1, 180, KINDS, 3)
    assert plan(1, 180, KINDS, 3) != plan(2, 180, KINDS, 3)


def test_the_plan_fills_the_time_with_holds_and_gaps_in_their_ranges():
    faults = plan(1, 180, KINDS, 3)
    assert sum(f.gap_s + f.hold_s for f in faults) >= 180
    assert sum(f.gap_s + f.hold_s for f in faults[:-1]) < 180  # not one more than needed
    assert all(1.5 <= f.hold_s <= 3.0 and 0.5 <= f.gap_s <= 1.5 for f in faults)
    assert [f.number for f in faults] == list(range(1, len(faults) + 1))


def test_every_round_holds_each_kind_once():
    faults = plan(7, 600, KINDS, 3)
    for start in range(0, len(faults) - len(KINDS) + 1, len(KINDS)):
        assert sorted(f.kind for f in faults[start : start + len(KINDS)]) == sorted(KINDS)


def test_node_faults_name_one_node_never_the_one_just_hit_and_the_writer_none():
    faults = plan(3, 600, KINDS, 3)
    node_faults = [f for f in faults if f.kind in NODE_KINDS]
    assert all(f.node in (1, 2, 3) for f in node_faults)
    assert all(a.node != b.node for a, b in itertools.pairwise(node_faults))
    assert all(f.node is None and f.target == "writer" for f in faults if f.kind == "writer")
    assert {f.node for f in node_faults} == {1, 2, 3}


def test_only_the_kinds_asked_for_are_planned():
    assert {f.kind for f in plan(1, 60, ("writer",), 3)} == {"writer"}
    assert {f.kind for f in plan(1, 60, ("kill", "stop"), 3)} == {"kill", "stop"}


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (
            "kill,boom",
            "--faults 'kill,boom': unknown boom; use a comma-separated list of kill, stop, partition, writer",
        ),
        (" , ", "--faults ' , ': use a comma-separated list of kill, stop, partition, writer"),
    ],
)
def test_unknown_fault_kinds_are_refused_by_name(value, message):
    with pytest.raises(DrillError) as err:
        parse_kinds(value)
    assert str(err.value) == message


def test_kinds_keep_their_order_once_each():
    assert parse_kinds("writer, kill,writer") == ("writer", "kill")


# -- quorum ---------------------------------------------------------------------------------------------------


def test_what_a_cluster_tolerates_is_a_minority_and_one_copy_less_than_its_replication():
    assert tolerated_away(3, 2) == 1
    assert tolerated_away(3, 1) == 0  # one copy: a lost node takes partitions with it
    assert tolerated_away(3, 3) == 1  # three copies, but a majority of three must stay
    assert tolerated_away(5, 3) == 2
    assert tolerated_away(1, 1) == 0


def test_node_faults_are_refused_where_one_node_away_loses_quorum():
    check_quorum(("kill", "writer"), 3, 2)
    check_quorum(("writer",), 1, 1)  # the writer takes no node away
    with pytest.raises(DrillError, match="--faults kill,stop: a cluster of 3 node"):
        check_quorum(("stop", "kill", "writer"), 3, 1)


def test_nodes_away_at_once_is_counted_from_what_ran():
    one_after_another = [
        {"node": 1, "injected_at": 10.0, "healed_at": 13.0},
        {"node": None, "injected_at": 14.0, "healed_at": 16.0},
        {"node": 2, "injected_at": 13.0, "healed_at": 18.0},  # injected at the very instant the first healed
    ]
    assert nodes_away_at_once(one_after_another) == 1
    overlapping = [{"node": 1, "injected_at": 10.0, "healed_at": 13.0}, {"node": 2, "injected_at": 12.0}]
    assert nodes_away_at_once(overlapping) == 2


def test_check_soak_refuses_bad_values_against_the_cluster():
    config = SimpleNamespace(runtime=SimpleNamespace(backend="cluster"), source="c.yaml")
    three = SimpleNamespace(
        cluster=SimpleNamespace(nodes=[1, 2, 3], settings=SimpleNamespace(replication=2)), config=config
    )
    check_soak(three, 3, "kill,stop,partition,writer", 1.0, "stub", 30)
    with pytest.raises(DrillError, match="--rate 0: must be more than 0"):
        check_soak(three, 3, "writer", 0, "stub", 30)
    single = SimpleNamespace(
        cluster=SimpleNamespace(nodes=[1, 2, 3], settings=SimpleNamespace(replication=1)), config=config
    )
    with pytest.raises(DrillError, match="replication 1 cannot lose a node"):
        check_soak(single, 3, "kill", 1.0, "stub", 30)
    containers = SimpleNamespace(
        cluster=three.cluster,
        config=SimpleNamespace(runtime=SimpleNamespace(backend="docker-cluster"), source="d.yaml"),
    )
    with pytest.raises(DrillError, match=r"d\.yaml: runtime\.backend is docker-cluster: this drill runs on the native"):
        check_soak(containers, 3, "writer", 1.0, "stub", 30)


def test_the_declared_flags_check_what_is_typed():
    with pytest.raises(FlagError, match=r"--minutes '0': must be at least 0\.1"):
        catalog.DRILLS["soak"].spec({"minutes": "0"})
    spec = catalog.DRILLS["soak"].spec({"minutes": "0.5", "seed": "4", "faults": "writer"})
    assert spec.parameters["minutes"] == 0.5 and spec.parameters["seed"] == 4 and spec.parameters["faults"] == "writer"


# -- recovery -------------------------------------------------------------------------------------------------


def fault(number, kind, recovery, failover=None):
    return {
        "number": number,
        "kind": kind,
        "target": "writer" if kind == "writer" else "n1",
        "recovery_s": recovery,
        "failover_s": failover,
        "injected_s": 1.0,
        "held_s": 2.0,
        "healed_s": 3.0,
    }


def test_the_recovery_table_has_count_p50_and_max_per_kind_in_kind_order():
    faults = [
        fault(1, "writer", 0.5),
        fault(2, "kill", 8.0, 2.0),
        fault(3, "kill", 6.0, 3.0),
        fault(4, "kill", 7.0, 1.0),
        fault(5, "writer", None),
    ]
    table = recovery_table(faults)
    assert [r["kind"] for r in table] == ["kill", "writer"]
    kill, writer = table
    assert (kill["count"], kill["recovered"], kill["recovery_p50_s"], kill["recovery_max_s"]) == (3, 3, 7.0, 8.0)
    assert (kill["failover_p50_s"], kill["failover_max_s"]) == (2.0, 3.0)
    assert (writer["count"], writer["recovered"], writer["recovery_p50_s"]) == (2, 1, 0.5)
    assert writer["failover_p50_s"] is None


def test_a_fault_over_the_bound_or_never_recovered_fails_and_is_named():
    ok, detail = soak_checks.recoveries_within([fault(1, "kill", 3.0), fault(2, "writer", 1.0)], 30)
    assert ok and "kill x1 p50 3.0 s" in detail
    ok, detail = soak_checks.recoveries_within([fault(1, "kill", 31.0), fault(2, "stop", None)], 30)
    assert not ok and "#1 kill n1: 31.0" in detail and "#2 stop n1: None" in detail
    assert soak_checks.recoveries_within([], 30)[0] is False  # no fault ran: nothing was proven


def state(partition, node, status="active"):
    return {"partition_id": partition, "plain_node_id": node, "replay_status": status}


def test_placed_needs_every_partition_on_replication_caught_up_nodes_and_the_returning_node_among_them():
    names = {"N1": "n1", "N2": "n2", "N3": "n3"}
    without_n1 = [state(0, "N2"), state(0, "N3"), state(1, "N2"), state(1, "N3")]
    assert placed(without_n1, names, 2, 2)
    assert not placed(without_n1, names, 2, 2, back="n1")  # n1 answers, but Restate has not placed it yet
    with_n1 = [state(0, "N1"), state(0, "N3"), state(1, "N2"), state(1, "N3")]
    assert placed(with_n1, names, 2, 2, back="n1")
    catching_up = [state(0, "N1", "catching-up"), state(0, "N3"), state(1, "N2"), state(1, "N3")]
    assert not placed(catching_up, names, 2, 2, back="n1")
    assert not placed(with_n1, names, 3, 2)  # a partition with no processor at all


# -- exactly once -----------------------------------------------------------------------------------------


def test_a_step_begun_again_after_its_journaled_completion_is_late():
    journaled = {"inv_a": {"outline": 10.0}, "inv_b": {"outline": 10.0}}
    items = [("inv_a", "outline", 9.0), ("inv_a", "outline", 10.5), ("inv_a", "summary", 11.0), (None, "x", 20.0)]
    assert exactly_once.late_ones(journaled, items) == [("inv_a", "outline", 10.5)]
    # begun once, stamped journaled before it: a node's stale clock after a thaw, not a re-run
    once = [("inv_b", "outline", 10.2)]
    assert exactly_once.late_ones(journaled, once) == []
    assert exactly_once.singles(journaled, once) == [("inv_b", "outline", 10.2)]


def test_only_a_deposed_leaders_window_on_a_partition_it_led_excuses_a_late_step():
    deposed = [{"node": "n2", "led": [1], "from": 100.0, "to": 108.0}]
    partitions = {"inv_a": 1, "inv_b": 0}
    late = [("inv_a", "outline", 104.0), ("inv_b", "outline", 104.0), ("inv_a", "summary", 120.0)]
    failed, excused = exactly_once.split_late(late, partitions, deposed)
    assert excused == ["inv_a/outline"]
    assert failed == ["inv_a/summary", "inv_b/outline"]  # another partition, or after the window: a FAIL
    assert exactly_once.split_late(late, partitions, []) == (
        sorted({"inv_a/outline", "inv_b/outline", "inv_a/summary"}),
        [],
    )


# -- the report ---------------------------------------------------------------------------------------------


def test_report_md_has_the_per_kind_table_and_every_fault():
    faults = [fault(1, "kill", 8.0, 2.0), fault(2, "writer", 0.5)]
    lines = soak_sections({"faults": faults, "recovery": recovery_table(faults), "recovery_bound_s": 30})
    text = "\n".join(lines)
    assert "## Fault schedule (as it ran)" in text and "bound 30 s" in text
    assert "| kill | 1 | 1 | 8.00 | 8.00 | 2.00 | 2.00 |" in text
    assert "| writer | 1 | 1 | 0.50 | 0.50 | - | - |" in text
    assert "| 2 | writer | writer | 1.00 | - | 2.00 | 3.00 | 0.50 | - |" in text
    assert soak_sections({}) == []


def test_report_html_has_the_per_kind_table_when_the_drill_is_a_soak():
    from drillkit.reports.html_population import soak_table

    faults = [fault(1, "kill", 8.0, 2.0), fault(2, "writer", None)]
    html = soak_table({"recovery": recovery_table(faults), "recovery_bound_s": 30})
    assert "Faults (recovery bound 30 s)" in html
    assert "<td>kill</td><td class='num'>1</td><td class='num'>8.00 s</td>" in html
    assert "<td>writer</td><td class='num'>1</td><td class='num'>-</td>" in html
    assert soak_table({}) == ""


def test_the_load_sends_keys_at_its_rate_retries_through_other_nodes_and_gives_up_when_told(tmp_path):
    """Nothing listens on the node's ingress port (a closed loopback port refuses at once): every key is
    sent, every attempt fails and is counted per node (a key queued behind the stop is not tried), nothing
    is accepted, and the senders end on a stop that gives up at once (a cleanup path)."""
    import socket
    import time

    from drillkit.components.restate_cluster import Node
    from drillkit.config import ClusterSettings
    from drillkit.kit.keyed_load import KeyedLoad

    with socket.socket() as probe:  # a port that was free a moment ago: nothing listens there now
        probe.bind(("127.0.0.1", 0))
        free = probe.getsockname()[1]
    settings = ClusterSettings(ingress_base_port=free - 1, nodes=1, replication=1)
    load = KeyedLoad([Node(1, settings, tmp_path, tmp_path)], rate=50.0, prefix="soak")
    load.start()
    begun = time.monotonic()
    while len(load.sends) < 5 and time.monotonic() - begun < 10:
        time.sleep(0.01)  # the test's own wait for the ticker, bounded
    load.stop(give_up_s=0)
    never = load.drain()
    sent = [s.key for s in load.sends]
    assert len(sent) >= 5 and never == sent
    figures = load.figures()
    assert figures["accepted"] == 0 and figures["failed_send_attempts_per_node"]["n1"] >= 1
    assert sent[0].startswith("soak-") and sent[0].endswith("-0")
