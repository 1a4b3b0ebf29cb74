"""--protocol: how Restate talks to the service during a drill, applied around every drill's scenario
(never by a drill itself), and the judgement of what the replays it causes did.

- `h2c` (default): the deployment as the config registers it (HTTP/2 cleartext, one bidirectional stream
  per attempt: the journal is replayed only when an attempt fails). Nothing changes: today's drills.
- `http1`: the deployment registered again as HTTP/1.1 (`use_http_11`, Restate's RequestResponse
  protocol): the service cannot hear Restate's acknowledgement of a step on the same request, so it
  suspends after each step and Restate replays the journal in a new request (measured here, 1.7.12: one
  attempt per step, each with its own `last_start_at`, `retry_count` staying at 1).
- `suspend`: Restate's inactivity timeout at 0, as Restate's own SDK test suite runs its
  "alwaysSuspending" suite (`RESTATE_WORKER__INVOKER__INACTIVITY_TIMEOUT=0s`): restate-server restarted
  with it (its data kept), and the service's own inactivity timeout set to 0 through the admin API
  (`PATCH /services/WriterAgentRestate`), because the writer declares one per service (60 s) and a
  service's own value wins over the server's default. Every await then suspends and resumes by replay.

Judged after the drill's own checks (http1 and suspend only):
- no step ran again after Restate had journaled it, over the whole run and every replay (the writer's
  ledger against Restate's journal, as `checks.no_finished_step_ran_again`);
- each invocation that completed with success returned exactly what its journaled step results compose
  (Restate's stored output against `compose_output` of the values in `sys_journal`): a replay that took
  another path, or ran a step again and used the new answer, changes the output and FAILs. This is
  chosen over comparing with a reference run: the model's answers differ from run to run, the journal
  is what a replay must reproduce;
- replays happened: Restate's row of each invocation, sampled while the drill runs, shows attempts that
  were not retries of a failure (`last_start_at` changes while `retry_count` does not grow). None seen
  is INCONCLUSIVE, never a PASS: the protocol was not exercised.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

from drillkit.components.writer import compose_output
from drillkit.errors import DrillError, HttpError
from drillkit.evidence import journaled_completions, journaled_results, reexecuted_after_journaled
from drillkit.kit.frame import Drill, Scenario
from drillkit.restate_api import SERVICE, sql_list
from drillkit.stack import Stack

Protocol = Literal["h2c", "http1", "suspend"]
H2C: Protocol = "h2c"
HTTP1: Protocol = "http1"
SUSPEND: Protocol = "suspend"
PROTOCOLS: tuple[Protocol, ...] = (H2C, HTTP1, SUSPEND)
INACTIVITY_ENV = "RESTATE_WORKER__INVOKER__INACTIVITY_TIMEOUT"
SUSPEND_ENV = {INACTIVITY_ENV: "0s"}
SUSPEND_BACKENDS = ("native", "docker")
"""Where one server restarted with SUSPEND_ENV is the whole of Restate (a cluster's nodes are not, yet)."""
SAMPLE_S = 0.1
"""How often Restate's rows are sampled for attempts: a suspension lasts at least a step, seconds here."""
SHOWN = 5


def refusal(protocol: str, stack: Stack, refused: Mapping[str, str]) -> str | None:
    """Why this drill cannot run over `protocol` on this stack (None: it can), before anything starts."""
    if protocol == H2C:
        return None
    if protocol in refused:
        return refused[protocol]
    if stack.target is not None:
        return (
            f"on a configured target only h2c: the replay checks compose the shipped writer's output from its "
            f"journaled steps ({stack.target.what} keeps its own)"
        )
    if protocol == SUSPEND and stack.server.name not in SUSPEND_BACKENDS:
        return (
            f"on the {stack.server.name} backend the drill frame does not restart every node with the inactivity "
            f"timeout at 0 yet (suspend runs on {' and '.join(SUSPEND_BACKENDS)}; http1 runs here)"
        )
    return None


def parse_list(value: str | None) -> tuple[Protocol, ...]:
    """`--protocols all` or a comma-separated list (h2c,suspend); None or empty: h2c only."""
    text = (value or H2C).strip()
    if text == "all":
        return PROTOCOLS
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in PROTOCOLS]
    if unknown or not names:
        raise DrillError(f"--protocols {value!r}: use all, or a comma-separated list of {', '.join(PROTOCOLS)}")
    return tuple(p for p in PROTOCOLS if p in names)  # each once, in the documented order


def over(protocol: str, scenario: Scenario) -> Scenario:
    """`scenario` run over `protocol`: set up first (given back at the end, on every path), judged after.
    Over h2c the scenario runs as it always did, once what an interrupted run may have left is put back."""

    def as_configured(drill: Drill) -> None:
        settle(drill)
        scenario(drill)

    if protocol == H2C:
        return as_configured

    def run(drill: Drill) -> None:
        settle(drill)
        apply(drill, protocol)
        with watching(drill) as watch:
            scenario(drill)
        judge(drill, protocol, watch)

    return run


def apply(drill: Drill, protocol: str) -> None:
    stack = drill.stack
    if protocol == HTTP1:
        drill.on_cleanup("the deployment registered as its config says", lambda: stack.register(force=True))
        stack.register(use_http11=True, force=True)
    elif protocol == SUSPEND:
        # Given back to what the writer declares (Restate keeps a PATCHed value across registrations).
        declared = f"{stack.config.service.inactivity_timeout_s:g}s"

        def give_back() -> None:
            stack.server.restart()
            set_inactivity(stack, declared)

        drill.on_cleanup(
            f"restate-server on the config's environment, the service's inactivity timeout at {declared} again",
            give_back,
        )
        stack.server.restart(SUSPEND_ENV)
        set_inactivity(stack, "0s")
    drill.record.evidence["protocol"] = seen = what_restate_says(stack)
    drill.record.event(f"protocol {protocol}", ", ".join(f"{k}={v}" for k, v in seen.items()))


def settle(drill: Drill) -> None:
    """What a run stopped before its cleanup (a third Ctrl-C) may have left, put back as the config says:
    the deployment's HTTP version, the service's inactivity timeout (Restate keeps a PATCHed one across
    registrations). The shipped writer only: a configured target runs over h2c as it registers itself."""
    stack = drill.stack
    if stack.target is not None:
        return
    declared = f"{stack.config.service.inactivity_timeout_s:g}s"
    seen = what_restate_says(stack)
    wanted = "HTTP/1.1" if stack.rt.use_http11 else "HTTP/2.0"
    if seen["http_version"] not in (None, wanted):
        stack.register(force=True)
        drill.record.note(f"the deployment was registered as {seen['http_version']}: registered again as {wanted}")
    shown = seen["service_inactivity_timeout"]
    if shown is not None and duration_s(str(shown)) != stack.config.service.inactivity_timeout_s:
        set_inactivity(stack, declared)
        drill.record.note(
            f"the service's inactivity timeout was {seen['service_inactivity_timeout']}: set back to {declared}"
        )


UNITS_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0}
DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|min|s|m|h|d)\b")


def duration_s(text: str) -> float | None:
    """Restate's humantime (`1m`, `0s`, `1m 30s`, `500ms`) in seconds; None when it is not one."""
    parts = DURATION_PART.findall(text)
    if not parts or DURATION_PART.sub("", text).strip():
        return None
    return sum(float(number) * UNITS_S[unit] for number, unit in parts)


def set_inactivity(stack: Stack, value: str) -> None:
    """The service's own inactivity timeout, through Restate's admin API (it wins over the server's)."""
    stack.admin.request("PATCH", f"/services/{SERVICE}", json={"inactivity_timeout": value})


def what_restate_says(stack: Stack) -> dict[str, Any]:
    """Restate's own view of the protocol: the deployment's HTTP version and protocol type, the service's
    inactivity timeout, and the server's setting."""
    uri = stack.deployment_uri().rstrip("/")
    deployment = next((d for d in stack.admin.deployments() if str(d.get("uri", "")).rstrip("/") == uri), {})
    return {
        "http_version": deployment.get("http_version"),
        "protocol_type": deployment.get("protocol_type"),
        "service_inactivity_timeout": stack.admin.service(SERVICE).get("inactivity_timeout"),
        "server_inactivity_env": stack.server.runtime.server_env.get(INACTIVITY_ENV, "not set (default 1m)"),
    }


@dataclass
class Attempts:
    """What Restate's rows showed of each invocation's attempts while the drill ran."""

    starts: dict[str, set[str]] = field(default_factory=dict)
    """invocation id -> every `last_start_at` seen: one per attempt Restate started."""
    retries: dict[str, int] = field(default_factory=dict)
    """invocation id -> the highest `retry_count` seen (it grows only when an attempt failed)."""
    suspended: set[str] = field(default_factory=set)
    """Invocations seen with status `suspended`."""
    failed_samples: int = 0

    def add(self, rows: list[dict[str, Any]]) -> None:
        for row in rows:
            iid = str(row.get("id"))
            if row.get("last_start_at"):
                self.starts.setdefault(iid, set()).add(str(row["last_start_at"]))
            self.retries[iid] = max(self.retries.get(iid, 0), int(row.get("retry_count") or 0))
            if row.get("status") == "suspended":
                self.suspended.add(iid)

    def resumed(self, iid: str) -> int:
        """Attempts that were not the first nor a failure's retry: resumptions after a suspension, each
        one a replay of the journal. A lower bound (an attempt shorter than a sample can be missed)."""
        attempts = len(self.starts.get(iid, ()))
        failures = max(0, self.retries.get(iid, 0) - 1)
        return max(0, attempts - 1 - failures)

    def summary(self) -> dict[str, Any]:
        return {
            iid: {
                "attempts_seen": len(starts),
                "max_retry_count": self.retries.get(iid, 0),
                "resumed_by_replay": self.resumed(iid),
                "seen_suspended": iid in self.suspended,
            }
            for iid, starts in self.starts.items()
        }


def invocation_ids(drill: Drill) -> list[str]:
    return list(drill.invocations) or ([drill.record.invocation_id] if drill.record.invocation_id else [])


def sample(drill: Drill, attempts: Attempts) -> None:
    ids = invocation_ids(drill)
    if not ids:
        return
    try:
        attempts.add(
            drill.stack.admin.query(
                f"SELECT id, status, retry_count, last_start_at FROM sys_invocation WHERE id IN ({sql_list(ids)})"
            )
        )
    except (DrillError, OSError):  # the server restarting (a drill's fault): the next sample sees it again
        attempts.failed_samples += 1


@contextmanager
def watching(drill: Drill) -> Iterator[Attempts]:
    """Restate's rows of the drill's invocations sampled in the background while the scenario runs; the
    evidence goes into the record on every path."""
    attempts = Attempts()
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(SAMPLE_S):
            sample(drill, attempts)

    thread = threading.Thread(target=loop, name="attempt-watch", daemon=True)
    thread.start()
    try:
        yield attempts
    finally:
        stop.set()
        thread.join()
        sample(drill, attempts)
        drill.record.evidence["attempts"] = attempts.summary()


def judge(drill: Drill, protocol: str, attempts: Attempts) -> None:
    ids = invocation_ids(drill)
    if not ids:
        return
    journals = {iid: full_journal(drill, iid) for iid in ids}
    no_step_ran_after_journaled(drill, journals)
    outputs_compose_journal(drill, journals)
    replays_happened(drill, protocol, attempts, ids)


def full_journal(drill: Drill, iid: str) -> list[dict[str, Any]]:
    """The journal with each entry's full JSON (its result's bytes): the usual columns leave them out."""
    return drill.stack.admin.query(
        "SELECT index, entry_type, name, entry_json, entry_lite_json, appended_at FROM sys_journal "
        f"WHERE id IN ({sql_list([iid])}) ORDER BY index"
    )


def no_step_ran_after_journaled(drill: Drill, journals: dict[str, list[dict[str, Any]]]) -> None:
    """No step executed (ledger) after Restate had journaled it as finished (journal), in any replay."""
    again = {}
    for iid, rows in journals.items():
        rerun = reexecuted_after_journaled(drill.stack.writer.executions(iid), journaled_completions(rows))
        if rerun:
            again[iid] = rerun
    drill.record.expect(
        "no replay ran a finished step again (ledger against journal, whole run)",
        not again,
        f"{len(journals) - len(again)}/{len(journals)} invocations: every step executed only before Restate "
        "journaled it" + (f"; ran again: {dict(list(again.items())[:SHOWN])}" if again else ""),
    )


def outputs_compose_journal(drill: Drill, journals: dict[str, list[dict[str, Any]]]) -> None:
    """Each invocation that completed with success returned what its journaled step results compose."""
    rows = drill.stack.admin.query(
        f"SELECT id, completion_result FROM sys_invocation WHERE id IN ({sql_list(list(journals))})"
    )
    done = [str(r["id"]) for r in rows if r.get("completion_result") == "success"]
    if not done:
        drill.record.note("no invocation completed with success: no output to compare with its journal")
        return
    wrong = []
    for iid in done:
        differs = output_differs(drill, iid, journals[iid])
        if differs:
            wrong.append(f"{iid}: {differs}")
    drill.record.expect(
        "each output is exactly what its journaled step results compose (no replay changed it)",
        not wrong,
        f"{len(done) - len(wrong)}/{len(done)} outputs equal their journal's composition"
        + (f"; not: {wrong[:SHOWN]}" if wrong else ""),
    )


def output_differs(drill: Drill, iid: str, rows: list[dict[str, Any]]) -> str | None:
    """None when Restate's stored output equals the composition of the journaled results; else what differs."""
    try:
        output = drill.stack.ingress.output(iid)
    except HttpError as exc:
        return f"output not retrievable: {exc}"
    return compare_output(output, journaled_results(rows))


def compare_output(output: Any, results: dict[str, Any]) -> str | None:
    """What differs between a stored output and what `results` (step name -> journaled value) compose."""
    try:
        expected = compose_output(results)
    except (KeyError, ValueError, TypeError) as exc:
        return f"the journal lacks a step result the output needs ({exc})"
    if not isinstance(output, dict):
        return f"the output is not an object: {str(output)[:80]!r}"
    differ = sorted(k for k in expected if output.get(k) != expected[k])
    extra = sorted(set(output) - set(expected) - {"revision"})
    if differ or extra:
        return "differs in " + ", ".join(differ + [f"{k} (not composed)" for k in extra])
    return None


def replays_happened(drill: Drill, protocol: str, attempts: Attempts, ids: list[str]) -> None:
    """Evidence that the protocol was exercised; none is INCONCLUSIVE (set only when nothing failed)."""
    resumed = {iid: attempts.resumed(iid) for iid in ids}
    replayed = sum(1 for n in resumed.values() if n > 0)
    total = sum(resumed.values())
    detail = (
        f"{replayed}/{len(ids)} invocations resumed by replay after a suspension, {total} resumptions in all "
        f"(Restate's rows sampled every {SAMPLE_S:g} s: attempts with a new last_start_at and no failure), "
        f"{len(attempts.suspended)} seen with status suspended"
    )
    drill.record.event("replays", detail)
    if replayed:  # only ever met: none seen is not the system's failure, the protocol was not exercised
        drill.record.expect(f"replays happened over {protocol} (Restate's rows)", True, detail)
    elif drill.record.inconclusive is None:
        drill.record.inconclusive = f"protocol {protocol}: no suspension or replay seen ({detail})"
