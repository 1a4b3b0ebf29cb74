"""drill.soak's load and its progress: keyed invocations sent at a steady rate over every node's ingress,
and the writer's finished steps read from its ledger as they happen.

`Load` sends invocation i at `start + i / rate` (a ticker thread; the sends run on a small pool so a send
that hangs on a node being taken away does not hold the rate back). Each goes to the next node in turn
that is not away; a send that fails (refused, timed out: a node just lost, a partition between leaders) is
sent again with the same idempotency key through the next node, until one accepts it: Restate returns the
same invocation for the same key, so a key sent twice is never two invocations. Nothing here records into
the drill's timeline (it is not thread-safe): the drill reads the figures at the end.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx

from drillkit.components.restate_cluster import Node
from drillkit.components.writer import LedgerFollower
from drillkit.errors import DrillError
from drillkit.howto import RESTART_PROMPT, howto_body
from drillkit.kit.actions import Batch
from drillkit.restate_api import IngressApi

SEND_TIMEOUT = httpx.Timeout(5.0, connect=1.0)
RETRY_PAUSE_S = 0.25
SENDERS = 8
GIVE_UP_S = 120.0
"""After the load stops, how long a key not accepted yet keeps being sent (the cluster healed by then)."""


@dataclass
class Accepted:
    invocation_id: str
    node: str
    at: float
    """Epoch seconds the ingress accepted it."""
    attempts: int


@dataclass
class Load:
    nodes: list[Node]
    rate: float
    prefix: str = "soak"
    run: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    batch: Batch = field(default_factory=Batch)
    accepted: dict[str, Accepted] = field(default_factory=dict)
    """idempotency key -> where and when it was accepted"""
    sent: list[str] = field(default_factory=list)
    """every key, in the order sent"""
    errors: Counter[str] = field(default_factory=Counter)
    """failed send attempts per node"""
    away: set[int] = field(default_factory=set)
    """nodes the drill has taken away: no send goes there until they are back"""
    started: float = 0.0
    stopped: float = 0.0

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._give_up_at = float("inf")
        self._pool = ThreadPoolExecutor(SENDERS, thread_name_prefix="soak-send")
        self._ticker = threading.Thread(target=self._tick, name="soak-load", daemon=True)

    # -- the drill's side --------------------------------------------------------------------------

    def start(self) -> None:
        self.started = time.time()
        self._ticker.start()

    def set_away(self, node: int | None, away: bool) -> None:
        if node is None:
            return
        with self._lock:
            (self.away.add if away else self.away.discard)(node)

    def stop(self, give_up_s: float = GIVE_UP_S) -> None:
        """No new key from now on; keys not accepted yet go on being sent for up to `give_up_s` (0 on a
        cleanup path: the senders end at their next attempt, so nothing outlives the drill)."""
        self.stopped = self.stopped or time.time()
        self._give_up_at = min(self._give_up_at, time.time() + give_up_s)
        self._stop.set()
        if self._ticker.is_alive():
            self._ticker.join()

    def drain(self) -> list[str]:
        """Wait until every key sent was accepted or given up on; returns the keys never accepted."""
        self._pool.shutdown(wait=True)
        with self._lock:
            return [k for k in self.sent if k not in self.accepted]

    def figures(self) -> dict[str, Any]:
        with self._lock:
            spread = Counter(a.node for a in self.accepted.values())
            retried = sum(1 for a in self.accepted.values() if a.attempts > 1)
            return {
                "rate_per_s": self.rate,
                "run": self.run,
                "sent": len(self.sent),
                "accepted": len(self.accepted),
                "accepted_per_node": dict(sorted(spread.items())),
                "accepted_after_a_retry": retried,
                "failed_send_attempts_per_node": dict(sorted(self.errors.items())),
                "seconds": round((self.stopped or time.time()) - self.started, 2),
            }

    # -- the threads -------------------------------------------------------------------------------

    def _tick(self) -> None:
        i = 0
        while True:
            due = self.started + i / self.rate
            # Wait for the next tick or the stop, whichever comes first: the rate's own clock.
            if self._stop.wait(max(0.0, due - time.time())):
                return
            key = f"{self.prefix}-{self.run}-{i}"
            with self._lock:
                self.sent.append(key)
            self._pool.submit(self._send, i, key)
            i += 1

    def _send(self, i: int, key: str) -> None:
        body = howto_body(f"{RESTART_PROMPT} ({key})")
        attempt = 0
        while time.time() < self._give_up_at:
            with self._lock:
                up = [n for n in self.nodes if n.number not in self.away] or list(self.nodes)
            node = up[(i + attempt) % len(up)]
            attempt += 1
            try:
                with IngressApi(node.ingress_url, timeout=SEND_TIMEOUT) as ingress:
                    invocation_id = ingress.send(body, idempotency_key=key)
            except DrillError:
                with self._lock:
                    self.errors[node.name] += 1
                time.sleep(RETRY_PAUSE_S)  # a client's pause between retries, not a wait on a condition
                continue
            with self._lock:
                self.accepted[key] = Accepted(invocation_id, node.name, time.time(), attempt)
                self.batch.keys[invocation_id] = key
                self.batch.bodies[invocation_id] = body
            return

    def ids_in_order(self) -> list[str]:
        with self._lock:
            return [self.accepted[k].invocation_id for k in self.sent if k in self.accepted]


class Steps:
    """The writer's finished steps (ok), read incrementally from its ledger: (started, ended) epoch pairs.
    The drill holds the state dir's lock, so every line written meanwhile is this drill's."""

    def __init__(self, follower: LedgerFollower) -> None:
        self.follower = follower
        self.starts: dict[tuple[str, str, int, int], float] = {}
        self.done: list[tuple[float, float]] = []

    def update(self) -> None:
        for e in self.follower.new_entries():
            key = (e.invocation_id, e.step, e.attempt, e.pid)
            if e.outcome == "started":
                self.starts[key] = e.time
            elif e.outcome == "ok":
                self.done.append((self.starts.pop(key, e.time - e.duration_ms / 1000), e.time))

    def first_done_after(self, since: float) -> float | None:
        """End (epoch) of the first step that started after `since` and finished ok."""
        self.update()
        ends = [end for start, end in self.done if start > since]
        return min(ends) if ends else None

    def done_between(self, begin: float, end: float) -> int:
        self.update()
        return sum(1 for _, at in self.done if begin <= at <= end)
