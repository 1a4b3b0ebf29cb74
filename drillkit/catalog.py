"""The drills by name, their parameters declared once and checked before anything starts, and drill.all.

Each drill's parameters are a `Params` declaration below: the flag, its default, its help and the values it
takes. The drill's task builds its flags from it (tasks/drill.py), the DrillSpec functions take their
defaults from it, and `check` refuses a DrillSpec whose parameters it does not allow, from any caller."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import nullcontext, suppress
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any, Literal

from drillkit import flags, live, progress
from drillkit.components.tap_faults import FAULTS
from drillkit.drills import any_target
from drillkit.drills.crash import check_target, crash_scenario
from drillkit.drills.data_loss import check_data_loss, data_loss_scenario
from drillkit.drills.model_faults import check_model, model_scenario
from drillkit.drills.node_loss import INVOCATIONS, check_node_loss, node_loss_scenario
from drillkit.drills.rolling_upgrade import check_rolling_upgrade, rolling_upgrade_scenario
from drillkit.drills.server_crash import server_crash_scenario
from drillkit.drills.soak import check_soak, soak_scenario
from drillkit.drills.storm import Llm, check_storm, storm_scenario
from drillkit.drills.stuck import MODES as STUCK_MODES
from drillkit.drills.stuck import stuck_scenario
from drillkit.drills.timeout import DEFAULT_EXPECT, Expect, Mode, timeout_scenario
from drillkit.drills.tool_error import check_fail_first, tool_error_scenario
from drillkit.drills.upgrade import DEFAULT_INVOCATIONS, check_upgrade, upgrade_scenario
from drillkit.errors import ConfigError, DrillError
from drillkit.evidence import run_point
from drillkit.handles import Handles
from drillkit.interrupts import CleanupGuard, ForcedCleanup, stop_started
from drillkit.kit import protocols
from drillkit.kit.frame import INTERRUPTED_DRAIN_S, Scenario, bring_up, run_drill
from drillkit.kit.protocols import H2C, PROTOCOLS, Protocol
from drillkit.kit.storm_checks import Target
from drillkit.reports import html_report
from drillkit.reports.record import INCONCLUSIVE, PASS, DrillRecord
from drillkit.stack import Stack
from drillkit.state import drill_lock

Kind = Literal["text", "int", "float", "bool", "signal"]


@dataclass(frozen=True)
class Param:
    """One drill parameter, declared once: its flag (`--name`, underscores as dashes), default, help and the
    values it takes."""

    name: str
    default: Any
    """As typed on the command line ("KILL", 40, True); None when `default_text` describes what happens."""
    help: str
    """What it means; `help_text` adds the default."""
    kind: Kind | None = None
    """None: from the default's type (bool, int, float, else text)."""
    choices: tuple[str, ...] = ()
    minimum: float = 0
    default_text: str | None = None
    arg: str | None = None
    """The DrillSpec function's keyword when it is not `name` (`sig` for --signal)."""
    required: bool = False
    """No default: the flag must be given (its help says so)."""

    def __post_init__(self) -> None:
        if self.kind is None:
            kind = {bool: "bool", int: "int", float: "float"}.get(type(self.default), "text")
            object.__setattr__(self, "kind", kind)

    @property
    def flag(self) -> str:
        # As Invoke spells it: a trailing underscore (`from_`, a Python keyword) is dropped.
        return self.name.strip("_").replace("_", "-")

    @property
    def value(self) -> Any:
        """The default as the drill takes it (signal.SIGKILL for "KILL"); None for a required flag."""
        return None if self.required else self.parse(self.default)

    def shown_default(self) -> str:
        if self.required:
            return "none, required"
        if self.default_text is not None:
            return self.default_text
        if isinstance(self.default, bool):
            return "on" if self.default else "off"
        return str(self.default)

    def help_text(self) -> str:
        return f"{self.help} (default: {self.shown_default()})"

    def parse(self, value: object) -> Any:
        """The value checked and typed; a refusal is a FlagError naming the flag and the value."""
        if value is None and self.required:
            raise flags.FlagError(
                f"--{self.flag} is required" + (f": {', '.join(self.choices)}" if self.choices else "")
            )
        if value is None and self.default is None:
            return None
        if self.kind == "bool":
            return flags.boolean(self.flag, value)
        if self.kind == "int":
            return flags.whole(self.flag, value, int(self.minimum))
        if self.kind == "float":
            return flags.number(self.flag, value, float, self.minimum)
        if self.kind == "signal":
            return flags.signal_named(self.flag, value, self.choices)
        if self.choices:
            return flags.choice(self.flag, value, self.choices)
        return str(value)


class Params:
    """A drill's own parameters, in the order its DrillSpec function takes them."""

    def __init__(self, *params: Param) -> None:
        self.params = params
        self.defaults: dict[str, Any] = {p.name: p.value for p in params}
        """Each default as the DrillSpec functions take it (signal.SIGKILL for "KILL")."""

    def __iter__(self) -> Iterator[Param]:
        return iter(self.params)


WRITER_AT = "section:2"
"""The shipped writer's default kill point: outline and section 1 finished, section 2 in flight."""


# The parameters every drill shares (the frame's): a fixed wait budget, where the reports go, whether the
# stack the drill started stays up.
DEADLINE = Param(
    "deadline",
    None,
    "fixed seconds for each wait (step running, retrying, completion), and the watchdog's limit",
    kind="float",
    minimum=1,
    default_text="waits last as long as the system makes progress, scaled by the pace the drill observes",
    arg="deadline_s",
)
REPORT_DIR = Param(
    "report_dir",
    None,
    "where to write journal.json, report.md and junit.xml",
    default_text=".drill/reports/<drill>-<time>",
)
PROTOCOL = Param(
    "protocol",
    "h2c",
    "how Restate talks to the service: h2c (bidirectional HTTP/2 cleartext, as registered today), http1 (registered "
    "as HTTP/1.1 request/response: the service suspends and Restate replays the journal at each step) or suspend "
    "(Restate's inactivity timeout at 0, as Restate's own SDK tests: suspend and replay at every step); a replay "
    "that runs a finished step again or changes the output is a FAIL",
    choices=PROTOCOLS,
)
"""Every drill's: applied by the frame around the drill's scenario (drillkit.kit.protocols), not by each drill."""
KEEP_UP = Param(
    "keep_up",
    False,
    "leave the stack running afterwards when the drill had to start it",
    default_text="stop what it started",
)

AT_STEPS = "outline, section:N, summary or save_report"
CRASH = Params(
    Param(
        "signal",
        "KILL",
        "KILL (the HOW-TO's kill -9 crash) or TERM (graceful shutdown)",
        kind="signal",
        choices=("KILL", "TERM"),
        arg="sig",
    ),
    Param(
        "at",
        None,
        f"the step to interrupt: {AT_STEPS}; on a configured target run:N, the Nth Run of its journal",
        default_text=f"{WRITER_AT}; on a configured target {any_target.DEFAULT_AT}",
    ),
    Param("resume", True, "after the restart, resume at once; --no-resume waits for Restate's own backoff"),
)
SERVER_CRASH = Params(
    Param(
        "signal",
        "KILL",
        "KILL (a crash) or TERM (graceful shutdown) of restate-server",
        kind="signal",
        choices=("KILL", "TERM"),
        arg="sig",
    ),
    Param(
        "at",
        None,
        f"the step in flight when the server dies: {AT_STEPS}; on a configured target run:N",
        default_text=f"{WRITER_AT}; on a configured target {any_target.DEFAULT_AT}",
    ),
    Param("resume", True, "after the server is back, resume at once; --no-resume waits for Restate's own retry"),
)
TIMEOUT = Params(
    Param(
        "mode",
        "down",
        "down (endpoint unreachable, then back), hang (accepts, never answers) or pause (retries run out)",
        choices=("down", "hang", "pause"),
    ),
    Param(
        "expect",
        None,
        "recover, fail or pause",
        choices=("recover", "fail", "pause"),
        default_text=", ".join(f"{expect} for {mode}" for mode, expect in DEFAULT_EXPECT.items()),
    ),
)
MODEL = Params(
    Param(
        "fault",
        None,
        "what the model does: 429 (with Retry-After), 500, 503, 400 (invalid request), hang (no answer until "
        "the writer's timeout), reset (connection dropped mid-answer), slow (answer trickled over 3 s), "
        "truncated or malformed (the summary's JSON cut off, or not JSON)",
        kind="text",
        choices=FAULTS,
        required=True,
    ),
    Param("burst", 1, "how many model requests in a row get the fault", minimum=1),
)
STUCK = Params(
    Param(
        "mode",
        "freeze",
        "freeze (the writer SIGSTOPped with a step in flight, thawed once Restate aborted the attempt) or "
        "step-hang (the writer alive, one step blocked on a model answer trickling in past Restate's "
        "inactivity and abort timeouts)",
        choices=STUCK_MODES,
    ),
)
UPGRADE = Params(
    Param(
        "mode",
        "drain",
        "drain (revision 1 drains, then is removed), early (its process killed before its invocations finish: "
        "they back off, then complete once it returns) or incompatible (one moved onto a revision whose "
        "journal differs: journal mismatch caught, moved back, completed)",
        choices=("drain", "early", "incompatible"),
    ),
    Param(
        "invocations",
        DEFAULT_INVOCATIONS,
        "how many invocations are in flight on revision 1 at the redeploy, and how many are sent after it",
        minimum=1,
    ),
)
TOOL_ERROR = Params(
    Param("fail_first", 2, "how many attempts of the save_report tool fail before it succeeds", minimum=1),
)
STORM = Params(
    Param("invocations", 40, "how many invocations in flight at once, each with its own idempotency key", minimum=1),
    Param("kills", 2, "how many SIGKILLs of the target, at seeded points of progress"),
    Param("target", "writer", "what is killed: writer or server (restate-server)", choices=("writer", "server")),
    Param(
        "llm",
        "local",
        "local (the config's own endpoint) or stub (a 50 ms stub: the point is Restate)",
        choices=("local", "stub"),
    ),
    Param("seed", 7, "seed for the kill points: the same seed kills at the same progress"),
)
CLUSTER_NODE = Param(
    "node",
    "leader",
    "which node: leader (the one leading the partitions with the most invocations in flight), follower (one "
    "leading none of them), or its number 1..N",
    arg="target",
)
CLUSTER_INVOCATIONS = Param(
    "invocations", INVOCATIONS, "how many invocations in flight, spread over the partitions", minimum=1
)
CLUSTER_LLM = Param(
    "llm",
    "stub",
    "stub (a stub answering in 300 ms; the point is Restate) or local (the real model)",
    choices=("stub", "local"),
)
NODE_LOSS = Params(
    CLUSTER_NODE,
    Param(
        "signal",
        "KILL",
        "KILL (a crash) or STOP (frozen: alive but silent), sent to the recorded, verified pid",
        kind="signal",
        choices=("KILL", "STOP"),
        arg="sig",
    ),
    Param(
        "count",
        1,
        "how many nodes are lost: 1 (the others go on) or 2 (a majority: nothing moves meanwhile)",
        minimum=1,
    ),
    CLUSTER_INVOCATIONS,
    CLUSTER_LLM,
)
PARTITION = Params(CLUSTER_NODE, CLUSTER_INVOCATIONS, CLUSTER_LLM)
SOAK = Params(
    Param("minutes", 3.0, "how long the load and the fault schedule run (fractions allowed)", minimum=0.1),
    Param("seed", 1, "seed of the fault schedule: the same seed plans the same faults, nodes, holds and gaps"),
    Param(
        "faults",
        "kill,stop,partition,writer",
        "comma-separated fault kinds: kill (a node SIGKILLed, then started), stop (a node frozen with SIGSTOP, "
        "then thawed), partition (a node cut off by nftables, then healed), writer (the writer SIGKILLed, then "
        "started); one at a time, each held 1.5-3 s",
    ),
    Param("rate", 1.0, "invocations sent per second, each with its own idempotency key, over every node's ingress"),
    Param(
        "llm",
        "stub",
        "stub (a stub answering in 200 ms, behind the LLM tap; the point is Restate) or local (the config's own "
        "model, behind the tap)",
        choices=("stub", "local"),
    ),
    Param(
        "recovery_bound",
        30.0,
        "seconds from a fault's heal within which the node must answer, every partition be led and a new step "
        "finish; a fault over it fails the drill",
        minimum=1,
    ),
)
DATA_LOSS = Params(
    CLUSTER_NODE,
    Param(
        "signal",
        "KILL",
        "how the node goes down before its data is deleted: KILL (a crash) or TERM (a clean stop)",
        kind="signal",
        choices=("KILL", "TERM"),
        arg="sig",
    ),
    CLUSTER_INVOCATIONS,
    CLUSTER_LLM,
)
ROLLING_UPGRADE = Params(
    Param("from_", "1.6.2", "the Restate release the cluster starts on and is rolled back to", arg="old"),
    Param(
        "to",
        "1.7.12",
        "the release each node is replaced by in turn (the next minor version; the pinned restate_version)",
        arg="new",
    ),
    Param(
        "mode",
        "upgrade",
        "upgrade (each node stopped and replaced under load; a send refused meanwhile is retried on another "
        "node) or maintenance (each node first drained and out of the rotation: zero failed or retried sends)",
        choices=("upgrade", "maintenance"),
    ),
    Param(
        "rate",
        2.0,
        "keyed invocations sent a second, in turn to the nodes in service: a number, 0.1 to 20 (e.g. 0.5)",
        minimum=0.1,
    ),
    Param(
        "fresh",
        False,
        "let the drill delete a cluster it did not create (running, or data and invocations left by `inv up` and "
        "`inv send`) to start one afresh on --from; without it the drill refuses and names what would go (or run "
        "`inv down --purge` first)",
    ),
)


@dataclass(frozen=True)
class DrillSpec:
    name: str
    parameters: dict[str, Any]
    scenario: Scenario
    check: Callable[[Handles], None] | None = None
    """Refuses parameters this config cannot run (raises DrillError) before anything is started; it is
    given the handles the drill will act through (`Stack.handles()`), never the Stack."""
    deadline_s: float | None = None
    """Fixed wait budget (--deadline); None: waits follow the pace the drill observes."""
    on_target: Callable[[], DrillSpec] | str = "not written for configured targets yet"
    """The same drill on a configured target (`target:` in the config), or why it does not apply there."""
    for_target: bool = False
    """This spec is already the configured-target variant."""
    protocol: Protocol = H2C
    """How Restate talks to the service (--protocol): every drill's, applied around its scenario."""
    backends: tuple[str, ...] = ()
    """The runtime.backend values the drill runs on (empty: any): another is refused from the config alone,
    before any handle is built (no Docker engine is asked to refuse a docker-cluster)."""


class NotApplicable(ConfigError):
    """The drill cannot run on this config's target (said in one line; drill.all reports it as such)."""


def resolve(spec: DrillSpec, stack: Stack) -> DrillSpec:
    """The spec itself for the shipped writer; its configured-target variant otherwise."""
    if stack.target is None or spec.for_target:
        return spec
    if isinstance(spec.on_target, str):
        raise NotApplicable(f"drill.{spec.name} does not apply to {stack.target.what}: {spec.on_target}")
    return replace(spec.on_target(), for_target=True, protocol=spec.protocol)


def with_protocol(spec: DrillSpec, protocol: Protocol) -> DrillSpec:
    """The same drill run over `protocol` (checked against PROTOCOL's choices when the drill is checked)."""
    return replace(spec, protocol=protocol)


def _deadline(deadline_s: float | None) -> dict[str, Any]:
    return {"deadline_s": deadline_s} if deadline_s is not None else {}


def crash(
    sig: signal.Signals = CRASH.defaults["signal"],
    at: str | None = CRASH.defaults["at"],
    resume: bool = CRASH.defaults["resume"],
    deadline_s: float | None = DEADLINE.value,
) -> DrillSpec:
    return _a_kill("crash", crash_scenario, any_target.crash_scenario, True, sig, at, resume, deadline_s)


def server_crash(
    sig: signal.Signals = SERVER_CRASH.defaults["signal"],
    at: str | None = SERVER_CRASH.defaults["at"],
    resume: bool = SERVER_CRASH.defaults["resume"],
    deadline_s: float | None = DEADLINE.value,
) -> DrillSpec:
    return _a_kill(
        "server-crash", server_crash_scenario, any_target.server_crash_scenario, False, sig, at, resume, deadline_s
    )


def _a_kill(
    name: str,
    on_writer: Callable[..., Scenario],
    on_a_target: Callable[..., Scenario],
    kills_the_target: bool,
    sig: signal.Signals,
    at: str | None,
    resume: bool,
    deadline_s: float | None,
) -> DrillSpec:
    """crash and server-crash: a signal at a kill point (`--at`: a writer step, or run:N on a target)."""

    def spec(at: str, scenario: Callable[..., Scenario], check: Callable[[Handles], None]) -> DrillSpec:
        params = {"signal": sig.name.removeprefix("SIG"), "at": at, "resume": resume, **_deadline(deadline_s)}
        return DrillSpec(name, params, scenario(sig, at, resume), check, deadline_s)

    def on_target() -> DrillSpec:
        chosen = at or any_target.DEFAULT_AT
        return spec(chosen, on_a_target, partial(_check_target_point, at=chosen, kills=kills_the_target))

    writer_at = at or WRITER_AT
    return replace(spec(writer_at, on_writer, partial(check_target, at=writer_at)), on_target=on_target)


def _check_target_point(handles: Handles, at: str, kills: bool) -> None:
    if kills:
        any_target.check_startable(handles, "kill and restart it")
    run_point(at)


def timeout(
    mode: Mode = TIMEOUT.defaults["mode"],
    expect: Expect | None = TIMEOUT.defaults["expect"],
    deadline_s: float | None = DEADLINE.value,
) -> DrillSpec:
    params = {"mode": mode, "expect": expect or DEFAULT_EXPECT[mode], **_deadline(deadline_s)}

    def check_on_target(handles: Handles) -> None:
        if (expect or "recover") != "recover":
            raise ConfigError(f"--expect {expect}: on a configured target the timeout drill expects recover")
        any_target.check_startable(handles, "point it at a broken model endpoint")
        any_target.check_model_side(handles)

    target_variant: Callable[[], DrillSpec] | str = lambda: DrillSpec(  # noqa: E731
        "timeout",
        {"mode": mode, "expect": "recover", **_deadline(deadline_s)},
        any_target.timeout_scenario(mode),
        check_on_target,
        deadline_s,
    )
    if mode == "pause":
        target_variant = "its pause mode restarts Restate with the shipped writer's retry policy in mind"
    return DrillSpec("timeout", params, timeout_scenario(mode, expect), deadline_s=deadline_s, on_target=target_variant)


def tool_error(
    fail_first: int = TOOL_ERROR.defaults["fail_first"], deadline_s: float | None = DEADLINE.value
) -> DrillSpec:
    params = {"fail_first": fail_first, **_deadline(deadline_s)}

    def check_on_target(handles: Handles) -> None:
        check_fail_first(fail_first)
        if handles.target is not None and handles.target.spec.tool_fault is None:
            raise NotApplicable(
                f"drill.tool-error does not apply to {handles.target.what}: it declares no fault hook for its tool "
                f"(target.tool_fault in {handles.config.source})"
            )
        any_target.check_startable(handles, "restart it with its tool-fault hook set")

    return DrillSpec(
        "tool-error",
        params,
        tool_error_scenario(fail_first),
        lambda _handles: check_fail_first(fail_first),
        deadline_s,
        on_target=lambda: DrillSpec(
            "tool-error", params, any_target.tool_error_scenario(fail_first), check_on_target, deadline_s
        ),
    )


MODEL_FAULTS: tuple[str, ...] = FAULTS
"""drill.model's --fault choices (the tap's faults)."""


def model(fault: str, burst: int = MODEL.defaults["burst"], deadline_s: float | None = DEADLINE.value) -> DrillSpec:
    """The model answers `burst` requests in a row with `fault` (the LLM tap's plan, never the request)."""
    return DrillSpec(
        "model",
        {"fault": fault, "burst": burst, **_deadline(deadline_s)},
        model_scenario(fault, burst),
        partial(check_model, fault=fault, burst=burst),
        deadline_s,
        on_target="its expectations read the shipped writer's steps and journaled results",
    )


def storm(
    invocations: int = STORM.defaults["invocations"],
    kills: int = STORM.defaults["kills"],
    target: Target = STORM.defaults["target"],
    llm: Llm = STORM.defaults["llm"],
    seed: int = STORM.defaults["seed"],
    deadline_s: float | None = DEADLINE.value,
) -> DrillSpec:
    params = {"invocations": invocations, "kills": kills, "target": target, "llm": llm, "seed": seed}

    def on_target() -> DrillSpec:
        def check(handles: Handles) -> None:
            check_storm(handles, n=invocations, kills=kills, target="writer", llm="local")
            if target != "writer" or llm != "local":
                raise ConfigError("on a configured target the storm kills the target itself on its own model")
            any_target.check_startable(handles, "kill and restart it")
            any_target.check_model_side(handles)
            if invocations > 1 and handles.target is not None and not handles.target.tells_invocations_apart():
                raise ConfigError(
                    f"{handles.config.source}: target.body has no {{{{nonce}}}}: the storm's invocations could not be "
                    "told apart at the model (put {{nonce}} in a string the target sends to its model)"
                )

        return DrillSpec(
            "storm",
            {"invocations": invocations, "kills": kills, "seed": seed, **_deadline(deadline_s)},
            any_target.storm_scenario(invocations, kills, seed),
            check,
            deadline_s,
        )

    return DrillSpec(
        "storm",
        {**params, **_deadline(deadline_s)},
        storm_scenario(invocations, kills, target, llm, seed),
        partial(check_storm, n=invocations, kills=kills, target=target, llm=llm),
        deadline_s,
        on_target=on_target,
    )


def node_loss(
    target: str = NODE_LOSS.defaults["node"],
    sig: signal.Signals = NODE_LOSS.defaults["signal"],
    count: int = NODE_LOSS.defaults["count"],
    invocations: int = NODE_LOSS.defaults["invocations"],
    llm: str = NODE_LOSS.defaults["llm"],
    deadline_s: float | None = DEADLINE.value,
) -> DrillSpec:
    """Cluster backends: lose `count` nodes (KILL, or STOP to freeze them) with invocations in flight."""
    params = {
        "node": target,
        "signal": sig.name.removeprefix("SIG"),
        "count": count,
        "invocations": invocations,
        "llm": llm,
        **_deadline(deadline_s),
    }
    return DrillSpec(
        "node-loss",
        params,
        node_loss_scenario(target, sig, count, invocations, llm),
        partial(check_node_loss, target=target, sig=sig, count=count, invocations=invocations),
        deadline_s,
    )


def partition(
    target: str = PARTITION.defaults["node"],
    invocations: int = PARTITION.defaults["invocations"],
    llm: str = PARTITION.defaults["llm"],
    deadline_s: float | None = DEADLINE.value,
) -> DrillSpec:
    """Cluster backends: cut one node off from its peers and the writer (nftables natively, `docker network
    disconnect` for containers) with invocations in flight."""
    params = {"node": target, "invocations": invocations, "llm": llm, **_deadline(deadline_s)}
    return DrillSpec(
        "partition",
        params,
        node_loss_scenario(target, signal.SIGKILL, 1, invocations, llm, fault="cut"),
        partial(check_node_loss, target=target, sig=signal.SIGKILL, count=1, invocations=invocations),
        deadline_s,
    )


def soak(
    minutes: float = SOAK.defaults["minutes"],
    seed: int = SOAK.defaults["seed"],
    faults: str = SOAK.defaults["faults"],
    rate: float = SOAK.defaults["rate"],
    llm: str = SOAK.defaults["llm"],
    recovery_bound: float = SOAK.defaults["recovery_bound"],
    deadline_s: float | None = DEADLINE.value,
) -> DrillSpec:
    """Cluster backend: steady keyed load for `minutes` while a seeded schedule breaks one thing at a time."""
    params = {
        "minutes": minutes,
        "seed": seed,
        "faults": faults,
        "rate": rate,
        "llm": llm,
        "recovery_bound": recovery_bound,
        **_deadline(deadline_s),
    }
    return DrillSpec(
        "soak",
        params,
        soak_scenario(minutes, seed, faults, rate, llm, recovery_bound),
        partial(check_soak, minutes=minutes, faults=faults, rate=rate, llm=llm, recovery_bound=recovery_bound),
        deadline_s,
        on_target="it breaks the cluster's nodes and the shipped writer under a load of the writer's own requests",
    )


def data_loss(
    target: str = DATA_LOSS.defaults["node"],
    sig: signal.Signals = DATA_LOSS.defaults["signal"],
    invocations: int = DATA_LOSS.defaults["invocations"],
    llm: str = DATA_LOSS.defaults["llm"],
    deadline_s: float | None = DEADLINE.value,
) -> DrillSpec:
    """Cluster backend: a node down, its partition store deleted, started again: it rebuilds from its peers."""
    params = {
        "node": target,
        "signal": sig.name.removeprefix("SIG"),
        "invocations": invocations,
        "llm": llm,
        **_deadline(deadline_s),
    }
    return DrillSpec(
        "data-loss",
        params,
        data_loss_scenario(target, sig, invocations, llm),
        partial(check_data_loss, target=target, sig=sig, invocations=invocations),
        deadline_s,
        backends=("cluster",),
    )


def rolling_upgrade(
    old: str = ROLLING_UPGRADE.defaults["from_"],
    new: str = ROLLING_UPGRADE.defaults["to"],
    mode: str = ROLLING_UPGRADE.defaults["mode"],
    rate: float = ROLLING_UPGRADE.defaults["rate"],
    fresh: bool = ROLLING_UPGRADE.defaults["fresh"],
    deadline_s: float | None = DEADLINE.value,
) -> DrillSpec:
    """Native cluster backend: every node replaced by --to one at a time under load, then rolled back to
    --from; a cluster it did not create is deleted only with --fresh."""
    return DrillSpec(
        "rolling-upgrade",
        {"from": old, "to": new, "mode": mode, "rate": rate, "fresh": fresh, **_deadline(deadline_s)},
        rolling_upgrade_scenario(old, new, mode, rate),  # type: ignore[arg-type]
        partial(check_rolling_upgrade, old=old, new=new, rate=rate, fresh=fresh),
        deadline_s,
        backends=("cluster",),
    )


def upgrade(
    mode: str = UPGRADE.defaults["mode"],
    invocations: int = UPGRADE.defaults["invocations"],
    deadline_s: float | None = DEADLINE.value,
) -> DrillSpec:
    """A second revision deployed while invocations are in flight: pinned, drained, removed; taken away too
    early; an incompatible journal caught and recovered."""
    return DrillSpec(
        "upgrade",
        {"mode": mode, "invocations": invocations, **_deadline(deadline_s)},
        upgrade_scenario(mode, invocations),  # type: ignore[arg-type]
        partial(check_upgrade, mode=mode, invocations=invocations),
        deadline_s,
        on_target="it deploys revisions of the shipped writer (its `revision` config key) beside each other",
    )


def stuck(mode: str = STUCK.defaults["mode"], deadline_s: float | None = DEADLINE.value) -> DrillSpec:
    """The writer frozen (SIGSTOP), or one of its steps hung, past Restate's short timeouts: Restate aborts
    the attempt, retries, completes."""
    return DrillSpec(
        "stuck",
        {"mode": mode, **_deadline(deadline_s)},
        stuck_scenario(mode),  # type: ignore[arg-type]
        None,
        deadline_s,
        on_target="it runs the shipped writer on the stub model with short Restate timeouts (its config)",
    )


@dataclass(frozen=True)
class Declared:
    """A drill as a person asks for it by name: its own parameters, then DEADLINE, and the function that
    makes its DrillSpec from their values."""

    name: str
    params: Params
    make: Callable[..., DrillSpec]

    @property
    def flags(self) -> tuple[Param, ...]:
        """Every parameter its task has a flag for, in order (REPORT_DIR and KEEP_UP go to `run`)."""
        return (*self.params, PROTOCOL, DEADLINE)

    def spec(self, given: Mapping[str, object]) -> DrillSpec:
        """The DrillSpec for values typed on the command line (a flag not given: its default), each checked
        against its declaration (a FlagError names the first that is refused)."""
        # Every value given is checked before a missing required one is named: the first error a person
        # meets is about what they typed.
        typed = {p: p.parse(given[p.name]) for p in self.flags if given.get(p.name) is not None}
        values = {p.arg or p.name: typed[p] if p in typed else p.parse(p.default) for p in self.flags}
        protocol = values.pop(PROTOCOL.name)
        return with_protocol(self.make(**values), protocol)


_REGISTERS_ITSELF = {
    "stuck": "it registers the writer again with its own short Restate timeouts (inactivity 3 s), which would "
    "replace the protocol's registration and timeout",
    "upgrade": "it registers its revisions itself as new deployments (HTTP/2, each revision's own Restate "
    "timeouts), so the protocol would hold for revision 1 only",
}
NOT_OVER: dict[str, dict[str, str]] = {
    name: {protocols.HTTP1: why, protocols.SUSPEND: why} for name, why in _REGISTERS_ITSELF.items()
}
"""Drills that cannot run over a protocol, and why (their `check` refuses it before anything starts)."""


DRILLS: dict[str, Declared] = {
    d.name: d
    for d in (
        Declared("crash", CRASH, crash),
        Declared("server-crash", SERVER_CRASH, server_crash),
        Declared("timeout", TIMEOUT, timeout),
        Declared("tool-error", TOOL_ERROR, tool_error),
        Declared("storm", STORM, storm),
        Declared("node-loss", NODE_LOSS, node_loss),
        Declared("partition", PARTITION, partition),
        Declared("soak", SOAK, soak),
        Declared("data-loss", DATA_LOSS, data_loss),
        Declared("rolling-upgrade", ROLLING_UPGRADE, rolling_upgrade),
        Declared("model", MODEL, model),
        Declared("stuck", STUCK, stuck),
        Declared("upgrade", UPGRADE, upgrade),
    )
}


def check(spec: DrillSpec, stack: Stack) -> None:
    """Refuse a drill before anything starts: its parameters against its declaration (a FlagError, whoever
    built the spec), then against this config (the spec's own check, a DrillError)."""
    declared = DRILLS.get(spec.name)
    for param in declared.params if declared else ():
        if param.name in spec.parameters:
            param.parse(spec.parameters[param.name])
    PROTOCOL.parse(spec.protocol)
    why = protocols.refusal(spec.protocol, stack, NOT_OVER.get(spec.name, {}))
    if why is not None:
        raise NotApplicable(f"drill.{spec.name} --protocol {spec.protocol}: {why}")
    backend = stack.config.runtime.backend
    if spec.backends and backend not in spec.backends:
        named = {"cluster": "the native cluster (runtime.backend: cluster, configs/cluster.yaml)"}
        raise DrillError(
            f"{stack.config.source}: runtime.backend is {backend}: drill.{spec.name} runs on "
            + " or ".join(named.get(b, f"runtime.backend: {b}") for b in spec.backends)
            + " only"
        )
    if spec.check is not None:
        spec.check(stack.handles())


def all_drills() -> list[DrillSpec]:
    """What drill.all runs: both crash signals on the writer, a server crash, the three timeout modes,
    the tool error, a small storm on the real model, the quick model errors (a terminal 400, a 429
    burst, a cut-off JSON answer: about 10 s each with the stack up), both stuck modes and the quick
    upgrade modes (drain, incompatible: each about as long as a model error, twice under a loaded machine's
    writer restarts). `upgrade --mode early` is left out: two more writer restarts, about twice the drain."""
    return [
        crash(signal.SIGKILL),
        crash(signal.SIGTERM),
        server_crash(signal.SIGKILL),
        timeout("down"),
        timeout("hang"),
        timeout("pause"),
        tool_error(2),
        storm(invocations=20, kills=2),
        model("400"),
        model("429", burst=2),
        model("truncated"),
        stuck("freeze"),
        stuck("step-hang"),
        upgrade("drain"),
        upgrade("incompatible"),
    ]


LIVE_DRILLS = ("storm", "soak")  # long enough to want a live status of its own


def run(
    stack: Stack, spec: DrillSpec, report_dir: Path | None = None, keep_up: bool = False
) -> tuple[DrillRecord, Path]:
    spec = resolve(spec, stack)
    check(spec, stack)
    parameters = {**spec.parameters, PROTOCOL.name: spec.protocol}
    scenario = protocols.over(spec.protocol, spec.scenario)
    with live.watch(stack, f"drill.{spec.name}") if spec.name in LIVE_DRILLS else nullcontext():
        return run_drill(stack, spec.name, parameters, scenario, report_dir, keep_up, spec.deadline_s)


def label(spec: DrillSpec) -> str:
    """The drill as drill.all names its reports: its name, the parameters that tell its runs apart, and the
    protocol unless h2c."""
    return "-".join([named(spec.name, spec.parameters), *([spec.protocol] if spec.protocol != H2C else [])])


def named(drill: str, parameters: Mapping[str, Any]) -> str:
    """A drill run without its protocol: `crash-KILL`, `timeout-hang`, `model-400`."""
    return "-".join([drill, *(str(v) for k, v in parameters.items() if k in ("signal", "mode", "target", "fault"))])


def skipped(value: str | None) -> frozenset[str]:
    """`--skip a,b`: drill names drill.all runs (a name it does not run is a usage error, named)."""
    names = frozenset(n.strip() for n in (value or "").split(",") if n.strip())
    known = {spec.name for spec in all_drills()}
    unknown = sorted(names - known)
    if unknown:
        raise flags.FlagError(f"--skip {', '.join(unknown)}: drill.all runs {', '.join(sorted(known))}")
    return names


def matrix(
    specs: list[DrillSpec], over: tuple[Protocol, ...] = (H2C,), skip: frozenset[str] = frozenset()
) -> list[DrillSpec]:
    """drill.all's runs: every drill (but those skipped) over each protocol in turn, protocol by protocol."""
    return [with_protocol(spec, protocol) for protocol in over for spec in specs if spec.name not in skip]


def protocols_given(value: str | None) -> tuple[Protocol, ...]:
    """`--protocols all|h2c,suspend` for drill.all (None: h2c only); a refusal is a DrillError naming the value."""
    return protocols.parse_list(value)


def run_all(
    stack: Stack,
    report_dir: Path | None = None,
    keep_up: bool = False,
    specs: list[DrillSpec] | None = None,
    skip: frozenset[str] = frozenset(),
    over: tuple[Protocol, ...] = (H2C,),
) -> list[tuple[DrillRecord, Path]]:
    chosen, not_applicable = [], []
    for spec in matrix(specs or all_drills(), over, skip):
        try:
            resolved = resolve(spec, stack)
            check(resolved, stack)
        except NotApplicable as exc:
            not_applicable.append((spec, str(exc)))
            continue
        except DrillError as exc:  # ConfigError included
            if stack.target is None:
                raise
            # On a configured target a drill that cannot run there is said so, and the others run.
            not_applicable.append((spec, f"does not apply to {stack.target.what}: {exc}"))
            continue
        chosen.append(resolved)
    base = report_dir or stack.state.reports / f"all-{time.strftime('%Y%m%d-%H%M%S')}"
    results = []
    with drill_lock(stack.state, "drill.all"):
        since = time.time()
        started = bring_up(stack)  # once for all drills, not once per drill
        interrupted = False
        try:
            with live.watch(stack, "drill.all"):
                for number, spec in enumerate(chosen, start=1):
                    results.append(run(stack, spec, base / f"{number:02d}-{label(spec)}", keep_up=True))
        except KeyboardInterrupt:
            interrupted = True
            raise
        finally:
            if started and not keep_up:
                # After a Ctrl-C too: a second is held, a third still stops what this run started, by pid.
                with CleanupGuard().guarding():
                    try:
                        if interrupted:  # the writer's drain bounded, as in a single drill (down does the rest)
                            with suppress(DrillError):
                                stack.writer.kill(signal.SIGTERM, INTERRUPTED_DRAIN_S)
                        stack.down()
                    except ForcedCleanup:
                        stop_started(stack.procs, since, stack_started_by_run=True)
    show_tables(results, not_applicable, over)
    progress.info(f"index: {html_report.write_index(base, [d for _, d in results])}")
    passed = sum(r.verdict == PASS for r, _ in results)  # over every protocol
    inconclusive = sum(r.verdict == INCONCLUSIVE for r, _ in results)
    failed = len(results) - passed - inconclusive
    progress.info(
        f"{passed} passed, {failed} failed"
        + (f", {inconclusive} inconclusive" if inconclusive else "")
        + (f", {len(not_applicable)} not applicable" if not_applicable else "")
    )
    return results


def show_tables(
    results: list[tuple[DrillRecord, Path]], not_applicable: list[tuple[DrillSpec, str]], over: tuple[Protocol, ...]
) -> None:
    """A table per protocol (drill, parameters, verdict, time, reports), then, over several protocols, the
    matrix of verdicts: a row per drill, a column per protocol."""
    for protocol in over:
        rows = [
            (
                r.drill,
                " ".join(f"{k}={v}" for k, v in r.parameters.items() if k not in ("deadline_s", PROTOCOL.name)),
                r.verdict,
                f"{r.duration_s:.1f} s",
                str(d),
            )
            for r, d in results
            if r.parameters.get(PROTOCOL.name, H2C) == protocol
        ]
        rows += [(label(s), "", "NOT APPLICABLE", "-", why) for s, why in not_applicable if s.protocol == protocol]
        title = "drill.all" if over == (H2C,) else f"drill.all over {protocol}"
        progress.table(title, ("drill", "parameters", "verdict", "time", "reports"), rows)
    if len(over) > 1:
        progress.table("drill.all: protocol x drill", ("drill", *over), matrix_rows(results, not_applicable, over))


def matrix_rows(
    results: list[tuple[DrillRecord, Path]], not_applicable: list[tuple[DrillSpec, str]], over: tuple[Protocol, ...]
) -> list[tuple[str, ...]]:
    """One row per drill (as drill.all names its reports, without the protocol), a verdict per protocol."""
    cells: dict[str, dict[str, str]] = {}
    for record, _directory in results:
        protocol = record.parameters.get(PROTOCOL.name, H2C)
        cells.setdefault(named(record.drill, record.parameters), {})[protocol] = (
            f"{record.verdict} {record.duration_s:.0f} s"
        )
    for spec, _why in not_applicable:
        cells.setdefault(named(spec.name, spec.parameters), {})[spec.protocol] = "NOT APPLICABLE"
    return [(name, *(row.get(p, "-") for p in over)) for name, row in cells.items()]
