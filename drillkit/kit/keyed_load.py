"""Continuous keyed load on a cluster: one invocation every 1/rate seconds, each with its own idempotency
key, sent to the nodes in service in turn, from a thread, while the drill replaces nodes.

A client of a real cluster sits behind a load balancer: a node that does not answer (stopped, starting)
is a retry on the next node, with the same idempotency key, so the retry can never start a second
invocation. A send is *retried* when its first node did not accept it and a later one did, and *failed*
when no node accepted it within `RETRY_BUDGET_S`: the client-visible error the rolling-upgrade drill
counts. `take_out`/`put_back` are a load balancer's drain: the maintenance drill takes a node out of the
rotation before it touches it.
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass, field

from drillkit.components.restate_cluster import Node
from drillkit.errors import HttpError
from drillkit.howto import RESTART_PROMPT, howto_body
from drillkit.kit import actions
from drillkit.kit.frame import Drill
from drillkit.restate_api import IngressApi

RETRY_BUDGET_S = 20.0
"""How long one send may go round the nodes before it counts as failed (a node restart takes ~2-5 s)."""
RETRY_PAUSE_S = 0.2


@dataclass
class Send:
    """One keyed invocation as the client saw it: where each attempt went and what refused it."""

    key: str
    sent_at: float
    invocation_id: str | None = None
    accepted_by: str | None = None
    refusals: list[str] = field(default_factory=list)
    """`<node>: <error>` for every attempt that did not get the invocation accepted."""

    @property
    def retried(self) -> bool:
        return self.invocation_id is not None and bool(self.refusals)

    @property
    def failed(self) -> bool:
        return self.invocation_id is None


def summary(sends: list[Send]) -> dict[str, int]:
    """Counts for the record: sent, accepted, accepted after a retry, failed."""
    return {
        "sent": len(sends),
        "accepted": sum(s.invocation_id is not None for s in sends),
        "retried": sum(s.retried for s in sends),
        "failed": sum(s.failed for s in sends),
    }


class KeyedLoad(actions.Batch):
    """The load's invocations (a Batch: ids, keys, bodies) and every send's story."""

    def __init__(self, drill: Drill, nodes: list[Node], rate: float) -> None:
        super().__init__()
        self.drill = drill
        self.nodes = {n.number: n for n in nodes}
        self.rate = rate
        self.sends: list[Send] = []
        self.run = uuid.uuid4().hex[:8]
        self._in_service = set(self.nodes)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._turn = 0

    # -- the rotation -----------------------------------------------------------------------------------

    def take_out(self, number: int) -> None:
        with self._lock:
            self._in_service.discard(number)

    def put_back(self, number: int) -> None:
        with self._lock:
            self._in_service.add(number)

    def _next_node(self) -> Node:
        with self._lock:
            serving = sorted(self._in_service) or sorted(self.nodes)
            self._turn += 1
            return self.nodes[serving[self._turn % len(serving)]]

    # -- the thread -------------------------------------------------------------------------------------

    def start(self) -> None:
        self.drill.on_cleanup("keyed load stopped", self.stop)
        self._thread = threading.Thread(target=self._loop, name="keyed-load", daemon=True)
        self._thread.start()
        self.drill.record.event("load", f"{self.rate:g} keyed invocation(s) a second, keys roll-{self.run}-<n>")

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=RETRY_BUDGET_S + 5)
            self._thread = None

    def accepted(self) -> int:
        return sum(s.invocation_id is not None for s in list(self.sends))

    def _loop(self) -> None:
        clients = {n: IngressApi(node.ingress_url) for n, node in self.nodes.items()}
        try:
            i = 0
            next_at = time.monotonic()
            while not self._stop.is_set():
                self._send_one(clients, i)
                i += 1
                next_at += 1.0 / self.rate
                self._stop.wait(max(0.0, next_at - time.monotonic()))
        finally:
            for client in clients.values():
                client.close()

    def _send_one(self, clients: dict[int, IngressApi], i: int) -> None:
        key = f"roll-{self.run}-{i}"
        body = howto_body(f"{RESTART_PROMPT} ({i})")
        send = Send(key, time.time())
        self.sends.append(send)
        deadline = time.monotonic() + RETRY_BUDGET_S
        while time.monotonic() < deadline:
            node = self._next_node()
            try:
                invocation_id = clients[node.number].send(body, idempotency_key=key)
            except HttpError as exc:
                send.refusals.append(f"{node.name}: {str(exc)[:160]}")
                time.sleep(RETRY_PAUSE_S)  # a pause between two attempts of a client's retry, not a wait
                continue
            send.invocation_id, send.accepted_by = invocation_id, node.name
            with self._lock:
                self.keys[invocation_id] = key
                self.bodies[invocation_id] = body
                self.drill.invocations.append(invocation_id)
            return
