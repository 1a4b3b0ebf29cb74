"""What a drill of many invocations keeps for its picture: every invocation's Restate row (created,
completed, status) and every real execution the writer's ledger holds for them.

report.html draws the whole population from this (throughput and latency over time, an invocation-by-time
strip, an invocation-by-step matrix, counts per state) instead of one invocation out of many.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from drillkit.restate_api import AdminApi, sql_list

if TYPE_CHECKING:
    from drillkit.components.writer import WriterService

COLUMNS = "id, status, completion_result, created_at, completed_at, retry_count"


def gather(admin: AdminApi, writer: WriterService, ids: list[str]) -> dict[str, Any]:
    rows = admin.query(f"SELECT {COLUMNS} FROM sys_invocation WHERE id IN ({sql_list(ids)})")
    wanted = set(ids)
    runs = [asdict(e) for e in writer.executions() if e.invocation_id in wanted]
    return {"sent": list(ids), "invocations": rows, "executions": runs}
