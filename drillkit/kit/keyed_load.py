"""Continuous keyed load on a cluster (drill.soak, drill.rolling-upgrade): one invocation every 1/rate
seconds, each with its own idempotency key, sent over the nodes' ingress in turn while the drill takes
nodes away.

A client of a real cluster sits behind a load balancer: invocation i goes to the next node in turn that is
in service; a send that fails (refused, timed out: a node just lost or restarting, a partition between
leaders) is sent again with the same idempotency key through the next node, until one accepts it: Restate
returns the same invocation for the same key, so a retry can never start a second invocation. A ticker
thread keeps the rate by its own clock; the sends run on a small pool, so a send that hangs on a node
being taken away does not hold the rate back.

A send is *retried* when its first node did not accept it and a later one did, and *failed* when no node
accepted it within the load's `budget_s` (drill.rolling-upgrade counts those: the client-visible errors),
or by the time `stop` gives up. `take_out`/`put_back` are a load balancer's drain: no send goes to a node
out of the rotation until it is back. The load records nothing into the drill's timeline from its threads
(not thread-safe); the drill reads `figures`/`summary` at the end. The load is a `Batch` (ids, keys,
bodies) of what was accepted.
"""

from __future__ import annotations

import math
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx

from drillkit.components.restate_cluster import Node
from drillkit.errors import DrillError
from drillkit.howto import RESTART_PROMPT, howto_body
from drillkit.kit.actions import Batch
from drillkit.restate_api import IngressApi

SEND_TIMEOUT = httpx.Timeout(5.0, connect=1.0)
RETRY_PAUSE_S = 0.2
SENDERS = 8
RETRY_BUDGET_S = 20.0
"""drill.rolling-upgrade: how long one send may go round the nodes before it counts as failed (a node
restart takes ~2-5 s)."""
GIVE_UP_S = 120.0
"""After the load stops, how long a key not accepted yet keeps being sent (the cluster healed by then)."""


@dataclass
class Send:
    """One keyed invocation as the client saw it: where each attempt went and what refused it."""

    key: str
    sent_at: float
    invocation_id: str | None = None
    accepted_by: str | None = None
    refusals: list[str] = field(default_factory=list)
    """`<node>: <error>` for every attempt that did not get the invocation accepted."""
    accepted_at: float | None = None
    """Epoch seconds the ingress accepted it."""

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


class KeyedLoad(Batch):
    """The load's accepted invocations (a Batch: ids, keys, bodies) and every send's story (`sends`, in the
    order sent). `budget_s`: how long one send may go round the nodes (None: until `stop` gives up);
    `invocations`: a list each accepted id is appended to as it is accepted (the drill's)."""

    def __init__(
        self,
        nodes: list[Node],
        rate: float,
        prefix: str = "load",
        budget_s: float | None = None,
        invocations: list[str] | None = None,
    ) -> None:
        super().__init__()
        self.nodes = list(nodes)
        self.rate = rate
        self.prefix = prefix
        self.budget_s = math.inf if budget_s is None else budget_s
        self.invocations = invocations
        self.run = uuid.uuid4().hex[:8]
        self.sends: list[Send] = []
        self.errors: Counter[str] = Counter()
        """failed send attempts per node"""
        self.away: set[int] = set()
        """nodes out of the rotation: no send goes there until they are back"""
        self.started = 0.0
        self.stopped = 0.0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._give_up_at = math.inf
        self._pool = ThreadPoolExecutor(SENDERS, thread_name_prefix=f"{prefix}-send")
        self._ticker = threading.Thread(target=self._tick, name=f"{prefix}-load", daemon=True)

    # -- the drill's side --------------------------------------------------------------------------

    def start(self) -> None:
        self.started = time.time()
        self._ticker.start()

    def take_out(self, number: int) -> None:
        with self._lock:
            self.away.add(number)

    def put_back(self, number: int) -> None:
        with self._lock:
            self.away.discard(number)

    def stop(self, give_up_s: float = GIVE_UP_S) -> None:
        """No new key from now on; keys not accepted yet go on being sent for up to `give_up_s` (0 on a
        cleanup path: the senders end at their next attempt, so nothing outlives the drill)."""
        self.stopped = self.stopped or time.time()
        self._give_up_at = min(self._give_up_at, time.time() + give_up_s)
        self._stop.set()
        if self._ticker.is_alive():
            self._ticker.join()

    def halt(self) -> None:
        """Stop at once and wait for the senders (a cleanup path: nothing outlives the drill)."""
        self.stop(give_up_s=0)
        self._pool.shutdown(wait=True)

    def drain(self) -> list[str]:
        """Wait until every key sent was accepted or given up on; returns the keys never accepted."""
        self._pool.shutdown(wait=True)
        with self._lock:
            return [s.key for s in self.sends if s.failed]

    def accepted(self) -> int:
        with self._lock:
            return sum(not s.failed for s in self.sends)

    def ids_in_order(self) -> list[str]:
        with self._lock:
            return [s.invocation_id for s in self.sends if s.invocation_id is not None]

    def figures(self) -> dict[str, Any]:
        with self._lock:
            spread = Counter(s.accepted_by for s in self.sends if not s.failed)
            return {
                "rate_per_s": self.rate,
                "run": self.run,
                "sent": len(self.sends),
                "accepted": sum(not s.failed for s in self.sends),
                "accepted_per_node": dict(sorted(spread.items())),
                "accepted_after_a_retry": sum(s.retried for s in self.sends),
                "failed_send_attempts_per_node": dict(sorted(self.errors.items())),
                "seconds": round((self.stopped or time.time()) - self.started, 2),
            }

    # -- the threads -------------------------------------------------------------------------------

    def _next_node(self, i: int, attempt: int) -> Node:
        with self._lock:
            serving = [n for n in self.nodes if n.number not in self.away] or list(self.nodes)
        return serving[(i + attempt) % len(serving)]

    def _tick(self) -> None:
        i = 0
        while True:
            due = self.started + i / self.rate
            # Wait for the next tick or the stop, whichever comes first: the rate's own clock.
            if self._stop.wait(max(0.0, due - time.time())):
                return
            send = Send(f"{self.prefix}-{self.run}-{i}", time.time())
            with self._lock:
                self.sends.append(send)
            self._pool.submit(self._send, i, send)
            i += 1

    def _send(self, i: int, send: Send) -> None:
        body = howto_body(f"{RESTART_PROMPT} ({send.key})")
        deadline = send.sent_at + self.budget_s
        attempt = 0
        while time.time() < min(deadline, self._give_up_at):
            node = self._next_node(i, attempt)
            attempt += 1
            try:
                with IngressApi(node.ingress_url, timeout=SEND_TIMEOUT) as ingress:
                    invocation_id = ingress.send(body, idempotency_key=send.key)
            except DrillError as exc:
                with self._lock:
                    self.errors[node.name] += 1
                    send.refusals.append(f"{node.name}: {str(exc)[:160]}")
                time.sleep(RETRY_PAUSE_S)  # a client's pause between retries, not a wait on a condition
                continue
            with self._lock:
                send.invocation_id, send.accepted_by, send.accepted_at = invocation_id, node.name, time.time()
                self.keys[invocation_id] = send.key
                self.bodies[invocation_id] = body
                if self.invocations is not None:
                    self.invocations.append(invocation_id)
            return
