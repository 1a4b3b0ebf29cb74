"""A network partition on one host: nftables rules that cut one cluster node off from its peers and the writer.

Every node listens on 127.0.0.1, so addresses tell nothing apart. Ports do, for connections *to* a node
(its fabric port). Its own connections to its peers and to the writer leave from ephemeral ports,
though, so the node runs under its own group id (`runtime.cluster.socket_gid_base + N`, set by the
cluster component when the tool runs as root) and `meta skgid` matches the packets of its sockets. The
rules live in one table of their own (`inet drillkit_netcut`), removed whole on heal. They act on the
network namespace the tool runs in: inside `scripts/loopback-only` nothing else is touched.

    to the node's fabric port                      dropped (peers, restatectl)
    from the node's fabric port                    dropped (its answers on connections peers opened)
    the node's sockets -> peers' fabric ports      dropped (connections it opens)
    the node's sockets -> the writer's port        dropped (it can no longer drive invocations)
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass

from drillkit.errors import CommandError, Inconclusive

TABLE = "drillkit_netcut"


@dataclass(frozen=True)
class Cut:
    """What to cut: the node's fabric port and group id, its peers' fabric ports, the writer's port."""

    node: str
    fabric_port: int
    socket_gid: int
    peer_ports: tuple[int, ...]
    writer_port: int


def ruleset(cut: Cut) -> str:
    peers = ", ".join(str(p) for p in cut.peer_ports)
    return "\n".join(
        [
            f"table inet {TABLE} {{",
            "  chain output {",
            "    type filter hook output priority 0; policy accept;",
            f'    tcp dport {cut.fabric_port} drop comment "to {cut.node}\'s fabric port"',
            f'    tcp sport {cut.fabric_port} drop comment "{cut.node}\'s answers"',
            f'    meta skgid {cut.socket_gid} tcp dport {{ {peers} }} drop comment "{cut.node} to its peers"',
            f'    meta skgid {cut.socket_gid} tcp dport {cut.writer_port} drop comment "{cut.node} to the writer"',
            "  }",
            "}",
            "",
        ]
    )


@dataclass
class NetCut:
    run: Callable[..., subprocess.CompletedProcess[str]] = subprocess.run
    nft: str | None = None

    def _nft(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        binary = self.nft or shutil.which("nft") or "nft"
        return self.run([binary, *args], input=stdin, capture_output=True, text=True, timeout=15, check=False)

    def check_possible(self, socket_groups: bool) -> None:
        """Inconclusive (before any fault) when this host cannot cut a node off: no nft, no permission,
        or nodes not running under their own group id (not root)."""
        if self.nft is None and shutil.which("nft") is None:
            raise Inconclusive(
                "cannot change the firewall: `nft` is not installed (Debian: apt-get install nftables; "
                "scripts/bootstrap.sh does it as root)"
            )
        try:
            listed = self._nft("list", "tables")
        except (OSError, subprocess.SubprocessError) as exc:
            raise Inconclusive(f"cannot change the firewall: `nft list tables` failed: {exc}") from None
        if listed.returncode != 0:
            raise Inconclusive(
                f"cannot change the firewall (`nft list tables` exited {listed.returncode}: "
                f"{(listed.stderr or listed.stdout).strip()[:300]}); it needs root (CAP_NET_ADMIN)"
            )
        if not socket_groups:
            raise Inconclusive(
                "cannot single out a node's own connections: the nodes run under the tool's group, not one "
                "each (that needs the tool to run as real root), and on one host ports alone cannot tell them apart"
            )

    def apply(self, cut: Cut) -> str:
        self.heal()  # a table left by an interrupted run would merge with the new one
        text = ruleset(cut)
        out = self._nft("-f", "-", stdin=text)
        if out.returncode != 0:
            raise CommandError(["nft", "-f", "-"], out.returncode, out.stdout, out.stderr)
        return text

    def active(self) -> bool:
        return self._nft("list", "table", "inet", TABLE).returncode == 0

    def heal(self) -> bool:
        """Remove the table (every rule of ours); True if there was one."""
        if not self.active():
            return False
        out = self._nft("delete", "table", "inet", TABLE)
        if out.returncode != 0:
            raise CommandError(["nft", "delete", "table", "inet", TABLE], out.returncode, out.stdout, out.stderr)
        return True
