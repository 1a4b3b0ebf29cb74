"""What a drill leaves behind: a timeline, expectations with verdicts, the evidence, and four files.

`journal.json` (everything, for machines), `report.md` (the same for a person), `junit.xml` (one
test case per expectation, for CI) and `report.html` (a timeline picture, `html_report.py`) are written
under the drill's report dir on every outcome.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

from drillkit import progress
from drillkit.components.writer import LedgerEntry, executions
from drillkit.reports import html_report
from drillkit.state import write_json, write_text_atomically

PASS, FAIL, INCONCLUSIVE, ERROR = "PASS", "FAIL", "INCONCLUSIVE", "ERROR"
# Exit codes of `inv drill.*` (2 is a usage or config error, raised before any drill runs).
EXIT_CODES = {PASS: 0, FAIL: 1, ERROR: 1, INCONCLUSIVE: 3}


def exit_code(verdicts: list[str]) -> int:
    """0 when every drill passed; 1 if any failed or errored; else 3 if any was inconclusive."""
    if any(v in (FAIL, ERROR) for v in verdicts):
        return EXIT_CODES[FAIL]
    if not verdicts or INCONCLUSIVE in verdicts:
        return EXIT_CODES[INCONCLUSIVE]
    return EXIT_CODES[PASS]


# The columns of Restate's sys_invocation row that tell a person what happened to an invocation.
ROW_SUMMARY = (
    "status",
    "completion_result",
    "completion_failure",
    "retry_count",
    "journal_size",
    "last_failure_error_code",
    "last_failure",
    "created_at",
    "completed_at",
)


def row_summary(row: dict[str, Any]) -> dict[str, Any]:
    return {k: row[k] for k in ROW_SUMMARY if k in row}


@dataclass
class Event:
    offset_s: float
    event: str
    detail: str = ""


@dataclass
class Expectation:
    name: str
    passed: bool
    detail: str


@dataclass
class DrillRecord:
    drill: str
    parameters: dict[str, Any]
    started_at: float = field(default_factory=time.time)
    _t0: float = field(default_factory=time.monotonic, repr=False)
    timeline: list[Event] = field(default_factory=list)
    expectations: list[Expectation] = field(default_factory=list)
    evidence: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    error: str | None = None
    inconclusive: str | None = None
    """Why the drill could not judge (the environment failed before the fault); None when it could."""
    duration_s: float | None = None
    invocation_id: str | None = None

    # -- during the drill ---------------------------------------------------------------------------

    def event(self, name: str, detail: str = "") -> Event:
        entry = Event(round(time.monotonic() - self._t0, 3), name, detail)
        self.timeline.append(entry)
        progress.timed(entry.offset_s, name + (f": {detail}" if detail else ""), event=name, detail=detail)
        return entry

    def event_at(self, epoch: float, name: str, detail: str = "") -> Event:
        """An event that happened at a known wall-clock time (read from Restate's rows after the fact)."""
        entry = Event(round(epoch - self.started_at, 3), name, detail)
        self.timeline.append(entry)
        self.timeline.sort(key=lambda e: e.offset_s)
        progress.timed(
            entry.offset_s,
            name + (f": {detail}" if detail else "") + " (from Restate)",
            event=name,
            detail=detail,
            from_restate=True,
        )
        return entry

    def expect(self, name: str, passed: bool, detail: str) -> bool:
        self.expectations.append(Expectation(name, bool(passed), detail))
        return bool(passed)

    def note(self, text: str) -> None:
        self.notes.append(text)

    def finish(self) -> None:
        self.duration_s = round(time.monotonic() - self._t0, 3)

    # -- verdict ------------------------------------------------------------------------------------

    @property
    def verdict(self) -> str:
        """PASS only on evidence, FAIL only for what the system under test did, INCONCLUSIVE when the
        environment failed before the fault could be judged, ERROR when the tool itself broke."""
        if self.error is not None:
            return ERROR
        if any(not e.passed for e in self.expectations):
            return FAIL
        if self.inconclusive is not None or not self.expectations:
            return INCONCLUSIVE
        return PASS

    def reasons(self) -> list[str]:
        if self.error is not None:
            return [self.error]
        met = [f"{'met' if e.passed else 'NOT met'}: {e.name}: {e.detail}" for e in self.expectations]
        if self.verdict == INCONCLUSIVE:
            return [*met, f"inconclusive: {self.inconclusive or 'the drill checked no expectation'}"]
        return met

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("_t0")
        data["verdict"] = self.verdict
        data["reasons"] = self.reasons()
        return data

    # -- files --------------------------------------------------------------------------------------

    def write(self, directory: Path) -> dict[str, Path]:
        directory.mkdir(parents=True, exist_ok=True)
        paths = {
            "journal": directory / "journal.json",
            "report": directory / "report.md",
            "junit": directory / "junit.xml",
        }
        write_json(paths["journal"], self.to_dict())
        write_text_atomically(paths["report"], render_markdown(self))
        write_text_atomically(paths["junit"], render_junit(self))
        paths["html"] = html_report.write_html(directory, self.to_dict())
        return paths


def render_markdown(record: DrillRecord) -> str:
    lines = [
        f"# Drill `{record.drill}`: **{record.verdict}**",
        "",
        f"- started: {time.strftime('%Y-%m-%d %H:%M:%S %Z', time.localtime(record.started_at))}",
        f"- duration: {record.duration_s:.2f} s" if record.duration_s is not None else "- duration: (unfinished)",
        f"- invocation: `{record.invocation_id}`" if record.invocation_id else "- invocation: (none sent)",
        "- parameters: " + ", ".join(f"`{k}={v}`" for k, v in record.parameters.items()),
        "",
        "## Expectations",
        "",
        "| | expectation | evidence |",
        "|---|---|---|",
    ]
    for e in record.expectations:
        lines.append(f"| {'✅' if e.passed else '❌'} | {e.name} | {_cell(e.detail)} |")
    if record.error:
        lines += ["", f"**Error:** {record.error}"]
    if record.verdict == INCONCLUSIVE:
        lines += ["", f"**Inconclusive:** {record.inconclusive or 'the drill checked no expectation'}"]
    lines += ["", "## Timeline", "", "| t (s) | event | detail |", "|---:|---|---|"]
    lines += [f"| {e.offset_s:.2f} | {e.event} | {_cell(e.detail)} |" for e in record.timeline]
    if record.notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in record.notes]
    lines += evidence_sections(record.evidence)
    return "\n".join(lines) + "\n"


def evidence_sections(evidence: dict[str, Any]) -> list[str]:
    """The report's evidence: the writer's ledger, Restate's journal and row, the CLI's text."""
    lines: list[str] = []
    revisions = evidence.get("revisions") or []  # drill.upgrade: the deployments it ran side by side
    if revisions:
        pinned = list((evidence.get("pinned") or {}).values())
        lines += [
            "",
            "## Revisions (Restate deployments)",
            "",
            "| revision | deployment | Restate revision | "
            "writer pid(s) | registered (s) | removed (s) | invocations pinned |",
            "|---|---|---:|---|---:|---:|---:|",
        ]
        lines += [
            f"| {r.get('label')} | `{r.get('deployment_id')}` | {r.get('restate_revision')} | "
            f"{', '.join(str(p) for p in r.get('pids') or [])} | "
            f"{'before' if r.get('registered_s') is None else r['registered_s']} | "
            f"{'-' if r.get('removed_s') is None else r['removed_s']} | {pinned.count(r.get('deployment_id'))} |"
            for r in revisions
        ]
    lines += soak_sections(evidence.get("soak") or {})
    ledger = evidence.get("ledger") or []
    if ledger:
        lines += ["", "## Writer ledger (real executions)", "", "| step | attempt | pid | outcome | ms | error |"]
        lines.append("|---|---:|---:|---|---:|---|")
        lines += [
            f"| {e.step} | {e.attempt} | {e.pid} | {e.outcome or 'never finished'} | "
            f"{'' if e.duration_ms is None else f'{e.duration_ms:.0f}'} | {_cell(e.error or '')} |"
            for e in executions([LedgerEntry(**line) for line in ledger])
        ]
    steps = evidence.get("journal_steps") or []
    if steps:
        lines += [
            "",
            "## Restate journal (Run steps)",
            "",
            "| index | step | completed | result |",
            "|---:|---|---|---|",
        ]
        lines += [f"| {s['index']} | {s['name']} | {s['completed']} | {s['result']} |" for s in steps]
    row = evidence.get("invocation")
    if row:
        lines += ["", "## Restate's `sys_invocation` row", "", "```json", json.dumps(row_summary(row), indent=2), "```"]
    watchdog = evidence.get("watchdog")
    if watchdog:  # the drill was found stuck: where to look first
        lines += [
            "",
            "## Watchdog: the drill was stuck",
            "",
            f"{watchdog.get('reason')}.",
            "",
            f"- Restate's rows (`sys_invocation`, `sys_journal`, `sys_journal_events`) and the stacks: "
            f"`{watchdog.get('dump')}`",
            f"- the service's stacks alone: `{watchdog.get('stacks')}`",
        ]
    describe = evidence.get("cli_describe")
    if describe:
        lines += ["", "## `restate invocations describe`", "", "```", describe.rstrip(), "```"]
    return lines


def soak_sections(soak: dict[str, Any]) -> list[str]:
    """drill.soak: the recovery per fault kind (count, p50, max), then every fault as it ran."""
    if not soak.get("faults"):
        return []
    lines = [
        "",
        "## Fault schedule (as it ran)",
        "",
        "Recovery: from the heal until the node answers, every partition is led and a step started after the "
        f"heal has finished (the writer: that step alone); bound {soak.get('recovery_bound_s')} s.",
        "",
        "Failover (node faults): from the fault until every partition is led by the other nodes.",
        "",
        "| fault kind | count | recovered | recovery p50 (s) | recovery max (s) | failover p50 (s) "
        "| failover max (s) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {r['kind']} | {r['count']} | {r['recovered']} | {_num(r.get('recovery_p50_s'))} | "
        f"{_num(r.get('recovery_max_s'))} | {_num(r.get('failover_p50_s'))} | {_num(r.get('failover_max_s'))} |"
        for r in soak.get("recovery") or []
    ]
    lines += [
        "",
        "| # | kind | target | injected (s) | failover (s) | held (s) | healed (s) | recovery (s) "
        "| steps done while held |",
        "|---:|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {f['number']} | {f['kind']} | {f['target']} | {_num(f.get('injected_s'))} | {_num(f.get('failover_s'))} | "
        f"{_num(f.get('held_s'))} | {_num(f.get('healed_s'))} | {_num(f.get('recovery_s'))} | "
        f"{f.get('steps_while_held', '-')} |"
        for f in soak["faults"]
    ]
    return lines


def _num(value: Any) -> str:
    return "-" if value is None else f"{float(value):.2f}"


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")[:400]


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_NOT_XML = re.compile(r"[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def xml_safe(text: str) -> str:
    """Text XML 1.0 can carry: terminal colour codes and other control characters removed."""
    return _NOT_XML.sub("", _ANSI.sub("", text))


def render_junit(record: DrillRecord) -> str:
    cases = list(record.expectations)
    if record.verdict == INCONCLUSIVE or not cases:
        cases.append(Expectation("drill could judge the system", False, record.inconclusive or "no expectation"))
    failures = sum(1 for c in cases if not c.passed) if record.verdict == FAIL else 0
    suite = ET.Element(
        "testsuite",
        name=f"drill.{record.drill}",
        tests=str(len(cases)),
        failures=str(failures),
        errors="1" if record.error is not None else "0",
        skipped=str(sum(1 for c in cases if not c.passed)) if record.verdict == INCONCLUSIVE else "0",
        time=f"{record.duration_s or 0:.3f}",
    )
    for case in cases:
        element = ET.SubElement(
            suite, "testcase", classname=f"drill.{record.drill}", name=xml_safe(case.name), time="0"
        )
        if record.error is not None:
            error = xml_safe(record.error)
            ET.SubElement(element, "error", message=error[:500]).text = error
        elif not case.passed:
            # INCONCLUSIVE is JUnit's "skipped": the drill could not judge, which is not a failure.
            tag = "skipped" if record.verdict == INCONCLUSIVE else "failure"
            detail = xml_safe(case.detail)
            ET.SubElement(element, tag, message=detail[:500]).text = detail
    out = ET.SubElement(suite, "system-out")
    out.text = xml_safe("\n".join(f"{e.offset_s:.2f}s {e.event} {e.detail}" for e in record.timeline))
    text: str = ET.tostring(suite, encoding="unicode", xml_declaration=True)
    return text + "\n"
