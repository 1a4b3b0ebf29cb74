"""A live status for long runs (drill.all, drill.storm, bench): steps done, invocations completed, elapsed.

The counts come from the writer's execution ledger, read incrementally (O(new lines) per look) by a
thread every half second: it is the one source every drill, the storm and the benchmarks all feed, and
reading it costs Restate nothing. A step counts when an execution ended `ok`; an invocation when its
last step (`save_report`) did. Shown through `progress.live`, so the edge decides how it looks.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from drillkit import progress
from drillkit.components.writer import LedgerFollower
from drillkit.stack import Stack

INTERVAL_S = 0.5
LAST_STEP = "save_report"
_active = threading.Lock()


@contextmanager
def watch(stack: Stack, title: str) -> Iterator[None]:
    """Show the live status while the block runs; nested watches (a storm inside drill.all) add nothing."""
    if not _active.acquire(blocking=False):
        yield
        return
    follower = LedgerFollower(stack.config.ledger_file())
    follower.new_entries()  # count from now, not the ledger's history
    stop = threading.Event()
    started = time.monotonic()
    counts = {"steps": 0, "invocations": 0}

    def look(update: progress.Updater) -> None:
        for entry in follower.new_entries():
            if entry.outcome == "ok":
                counts["steps"] += 1
                counts["invocations"] += entry.step == LAST_STEP
        update(
            {
                "steps done": counts["steps"],
                "invocations completed": counts["invocations"],
                "elapsed": f"{time.monotonic() - started:.0f} s",
            }
        )

    try:
        with progress.live(title) as update:

            def loop() -> None:
                while not stop.wait(INTERVAL_S):
                    look(update)

            thread = threading.Thread(target=loop, name="live-status", daemon=True)
            thread.start()
            try:
                yield
            finally:
                stop.set()
                thread.join(timeout=2)
                look(update)
    finally:
        _active.release()
