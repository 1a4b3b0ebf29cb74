"""The Restate server alone (native, container or cluster), and one node of a cluster."""

from __future__ import annotations

from invoke.collection import Collection

from drillkit import flags, operations
from drillkit.errors import DrillError
from drillkit.flags import FlagError
from drillkit.stack import Stack
from tasks._edge import CONFIG_HELP, stack_for, task

NODE_HELP = (
    "the node's number, 1..runtime.cluster.nodes (required; cluster backends: configs/cluster.yaml, "
    "configs/docker-cluster.yaml)"
)


@task(name="start", help={"config": CONFIG_HELP})
def start(c, config=None):
    """Start the Restate server (native binary or Docker container, per runtime.backend)."""
    with stack_for(c, config) as stack:
        operations.start_restate(stack)


@task(name="stop", help={"config": CONFIG_HELP, "purge": "also delete its data"})
def stop(c, config=None, purge=False):
    """Stop the Restate server."""
    with stack_for(c, config) as stack:
        operations.stop_restate(stack, purge=purge)


@task(name="kill", help={"config": CONFIG_HELP, "signal": "KILL (a crash, default) or TERM (graceful)"})
def kill(c, config=None, signal="KILL"):
    """Kill the Restate server: its recorded, verified pid, or `docker kill` of the container."""
    with stack_for(c, config) as stack:
        operations.kill_restate(stack, flags.signal_named("signal", signal))


@task(name="logs", help={"config": CONFIG_HELP, "follow": "keep streaming new lines", "tail": "lines to show"})
def logs(c, config=None, follow=False, tail=50):
    """Show the Restate server's log (the container's logs with Docker)."""
    with stack_for(c, config) as stack:
        operations.restate_logs(stack, follow=follow, tail=flags.whole("tail", tail, 1))


def _node(stack: Stack, value: object) -> int:
    """--node N checked against the config: a node it does not have, or a config without a cluster, is a
    usage error (exit 2) like any bad flag, before anything is signalled."""
    if value is None:
        raise FlagError("--node N is required (1..runtime.cluster.nodes)")
    number = flags.whole("node", value, 1)
    try:
        nodes = len(stack.cluster.nodes)
    except DrillError as exc:
        raise FlagError(str(exc)) from None
    if number > nodes:
        raise FlagError(f"--node {value!r}: {stack.config.source} has nodes 1..{nodes}")
    return number


@task(name="node-start", help={"config": CONFIG_HELP, "node": NODE_HELP})
def node_start(c, config=None, node=None):
    """Start (or thaw) one node of the cluster and wait until every partition has a leader again."""
    with stack_for(c, config) as stack:
        operations.start_node(stack, _node(stack, node))


@task(name="node-stop", help={"config": CONFIG_HELP, "node": NODE_HELP})
def node_stop(c, config=None, node=None):
    """Stop one node of the cluster gracefully (SIGTERM to its recorded pid, verified first)."""
    with stack_for(c, config) as stack:
        operations.stop_node(stack, _node(stack, node))


@task(
    name="node-kill",
    help={
        "config": CONFIG_HELP,
        "node": NODE_HELP,
        "signal": "KILL (a crash, default), TERM, or STOP (freeze it: alive but silent; node-start thaws it)",
    },
)
def node_kill(c, config=None, node=None, signal="KILL"):
    """Kill one node of the cluster (its recorded, verified pid), or freeze it with STOP."""
    with stack_for(c, config) as stack:
        operations.kill_node(stack, _node(stack, node), flags.signal_named("signal", signal, ("KILL", "TERM", "STOP")))


ns = Collection("restate", start, stop, kill, logs, node_start, node_stop, node_kill)
