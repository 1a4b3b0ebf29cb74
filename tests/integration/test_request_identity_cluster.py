"""Request identity on the cluster backend: every node signs with the state dir's key (a line of its
TOML), so the writer, which refuses unsigned requests, is registered through one node and invoked
through another, and it still refuses a direct unsigned request."""

from __future__ import annotations

import tomllib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from drillkit.howto import howto_body
from drillkit.restate_api import IngressApi
from drillkit.stack import Stack
from tests.integration.conftest import make_cluster_config, stack_up

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def cluster_stack(tmp_path_factory: pytest.TempPathFactory, project_state: Path) -> Iterator[Stack]:
    path = make_cluster_config(tmp_path_factory.mktemp("cluster-identity"), project_state)
    with stack_up(path) as stack:
        yield stack


def test_every_node_loads_the_key_from_its_toml(cluster_stack):
    identity = cluster_stack.state.request_identity()
    for node in cluster_stack.cluster.nodes:
        toml = tomllib.loads(node.config_file.read_text())
        assert toml["worker"]["invoker"]["request-identity-private-key-pem-file"] == str(identity.private_key_file)
        log = node.log_file.read_text(errors="replace")
        assert "Loaded request identity key" in log and identity.public_key in log, node.name


def test_an_unsigned_request_is_refused_and_every_nodes_ingress_is_served(cluster_stack):
    with httpx.Client(timeout=httpx.Timeout(5.0, connect=2.0)) as client:
        unsigned = client.post(
            f"{cluster_stack.writer.url}/invoke/WriterAgentRestate/run",
            content=b"",
            headers={"content-type": "application/vnd.restate.invocation.v5"},
        )
    assert unsigned.status_code == 401
    # Through a node that is not the one the writer was registered through: whichever node leads the
    # invocation's partition calls the writer, and each signs with the same key.
    for node in cluster_stack.cluster.nodes[1:]:
        with IngressApi(node.ingress_url) as ingress:
            report = ingress.call(howto_body(), timeout_s=300)
        assert report["markdown_report"], node.name
