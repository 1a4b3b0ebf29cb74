"""The docker-cluster backend end to end, through the `inv` command line: three Restate containers on a
private bridge network, `drill.node-loss` (the leader's container `docker kill`ed) and `drill.partition`
(`docker network disconnect`) passing, and `inv down` leaving no container and no network (`--purge`: no
volume). The engine is DOCKER_HOST's, else a private dockerd started here and stopped by its PID; the
image is built from the native binary when no registry can provide it. About 80 s from its parts timed
on a quiet machine (103-173 s beside other test runs); skips, saying why, where no engine can run."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import pytest

from .conftest import inv, latest_journal, make_cluster_config

pytestmark = [pytest.mark.docker, pytest.mark.cluster]
NODES = ["restate-drill-n1", "restate-drill-n2", "restate-drill-n3"]
NETWORK = "restate_drill_cluster"


def ours(engine: Any) -> tuple[list[str], list[str], list[str]]:
    """Containers (any state), networks and volumes of the docker-cluster backend."""
    containers = sorted(c.name for c in engine.containers.list(all=True) if c.name in NODES)
    networks = [n.name for n in engine.networks.list(names=[NETWORK]) if n.name == NETWORK]
    volumes = sorted(v.name for v in engine.volumes.list() if v.name in {f"{n}-data" for n in NODES})
    return containers, networks, volumes


def check_up(engine: Any, out: str) -> None:
    assert "registered http://host.docker.internal:9080" in out
    containers, networks, _ = ours(engine)
    assert containers == NODES and networks == [NETWORK]
    n1 = engine.containers.get(NODES[0])
    assert n1.attrs["HostConfig"]["PortBindings"]["9070/tcp"] == [{"HostIp": "127.0.0.1", "HostPort": "9070"}]
    assert set(n1.attrs["NetworkSettings"]["Networks"]) == {NETWORK}


def check_verdicts(config: Path) -> None:
    for drill, how, by in (
        ("node-loss", "killed", "SIGKILL to n"),  # "... (container restate-drill-nN, pid P)"
        ("partition", "cut off", "docker network disconnect"),
    ):
        journal = latest_journal(config, drill)
        assert journal["verdict"] == "PASS", journal["reasons"]
        details = [e["detail"] for e in journal["timeline"] if e["event"] == how]
        assert details and by in details[0], journal["timeline"]
        print(f"\n{drill}: {how} {details[0]}; recovery {journal['evidence']['recovery_s']}", file=sys.stderr)
    cut = latest_journal(config, "partition")["evidence"]["cut"]
    assert cut.startswith(f"docker network disconnect {NETWORK} restate-drill-n"), cut


def check_engine_events(engine: Any, config: Path, since: int) -> None:
    """The engine's own record, not the drill's: a SIGKILL to a node's container, and the cut node's
    container (the same one throughout the partition) disconnected from the network, then attached again."""
    events = list(engine.events(since=since, until=int(time.time()) + 1, decode=True))
    kills = [e["Actor"]["Attributes"] for e in events if e.get("Type") == "container" and e["Action"] == "kill"]
    assert any(k.get("name") in NODES and k.get("signal") == "9" for k in kills), kills
    lost = latest_journal(config, "partition")["evidence"]["lost"]
    cut_node = engine.containers.get(f"restate-drill-{lost}")
    disconnects = [
        e["Actor"]["Attributes"]
        for e in events
        if e.get("Type") == "network"
        and e["Action"] == "disconnect"
        and e["Actor"]["Attributes"].get("container") == cut_node.id
    ]
    assert disconnects and all(d["name"] == NETWORK for d in disconnects), disconnects
    for name in NODES:
        assert NETWORK in engine.containers.get(name).attrs["NetworkSettings"]["Networks"]


def test_node_loss_and_partition_pass_on_the_docker_cluster_and_down_leaves_nothing(engine, tmp_path, project_state):
    config = make_cluster_config(tmp_path, project_state, backend="docker-cluster")
    timings: dict[str, float] = {}
    since = int(time.time()) - 1
    try:
        for step in ("up", "status", "drill.node-loss", "drill.partition"):
            started = time.monotonic()
            out = inv(config, step, *(["--keep-up"] if step.startswith("drill.") else []))
            timings[step] = round(time.monotonic() - started, 1)
            assert out.returncode == 0, f"inv {step}:\n{out.stdout[-4000:]}\n{out.stderr[-3000:]}"
            if step == "up":
                check_up(engine, out.stdout)
            if step == "status":
                assert "container restate-drill-n3" in out.stdout and "partition leaders" in out.stdout
        check_verdicts(config)
        check_engine_events(engine, config, since)
    except BaseException:
        inv(config, "down", "--purge")  # nothing kept for the next run (its `up` would find the data registered)
        raise
    finally:
        started = time.monotonic()
        down = inv(config, "down")
        timings["down"] = round(time.monotonic() - started, 1)
        print(f"\ndocker-cluster timings (s): {timings}", file=sys.stderr)
    assert down.returncode == 0, down.stdout + down.stderr
    containers, networks, volumes = ours(engine)
    assert containers == [] and networks == []  # nothing left running or attached after `inv down`
    assert len(volumes) == 3  # the nodes' data is kept, as the native cluster keeps its dirs
    purge = inv(config, "down", "--purge")
    assert purge.returncode == 0, purge.stdout + purge.stderr
    assert ours(engine) == ([], [], [])
