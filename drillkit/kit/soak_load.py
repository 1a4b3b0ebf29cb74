"""drill.soak's progress: the writer's finished steps read from its ledger as they happen (its load is
`keyed_load.KeyedLoad`)."""

from __future__ import annotations

from drillkit.components.writer import LedgerFollower


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
