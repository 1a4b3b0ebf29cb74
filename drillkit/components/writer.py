"""The writer service: `python scripts/restate_writer_service.py`, as the HOW-TO starts it.

This module is drillkit's only door into `writer_service`: its config files (derived copies for
drills), its execution ledger and its step names. Drills and benchmarks ask this component, never the
writer's modules.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import Any

import yaml

from drillkit.components.process import ConfigStamp, Listen, ManagedProcess, config_digest
from drillkit.config import PROJECT_ROOT, DrillConfig, load, validate_mapping
from drillkit.procs import ProcessRecord, ProcessTable, Stopped
from drillkit.state import StateDir, write_text_atomically
from writer_service.config import (
    CONFIG_ENV,
    HOST_OVERRIDE_ENV,
    IDENTITY_KEY_FILE_ENV,
    apply_overrides,
    read_config_data,
    step_order,
)
from writer_service.ledger import Execution, LedgerEntry, LedgerFollower, executions, read_ledger

# The door into writer_service: the rest of drillkit takes the writer's ledger and step order from here,
# so what the tool depends on in the writer is listed in one place (and kept so by pyproject's
# [tool.importlinter] contract).
__all__ = [
    "Execution",
    "LedgerEntry",
    "LedgerFollower",
    "WriterService",
    "compose_output",
    "executions",
    "read_ledger",
    "step_order",
]

NAME = "writer"
OUTPUT_KEYS = ("file_name", "research_topic", "short_summary", "markdown_report", "follow_up_questions", "output_path")


def compose_output(results: dict[str, Any]) -> dict[str, Any]:
    """What the shipped writer's handler returns, composed from its journaled step results alone (the plan,
    each section, the summary, the saved file's path), with the writer's own rendering: a replay that
    changed the output would make Restate's stored output differ from this. Raises KeyError or
    ValueError when a step the output needs has no journaled result."""
    from writer_service.agent import render_markdown  # the SDK is imported only when asked
    from writer_service.report_files import report_file_name

    if not results:
        raise ValueError("no journaled step result")
    plan = next(iter(results.values()))  # the first step: outline (or a revision's own first step)
    titles = list(plan["sections"])
    bodies = [str(results[f"section:{number}"]) for number in range(1, len(titles) + 1)]
    digest = results["summary"]
    markdown = render_markdown(plan["research_topic"], titles, bodies, digest)
    return {
        "file_name": report_file_name(plan["research_topic"], markdown),
        "research_topic": plan["research_topic"],
        "short_summary": digest["short_summary"],
        "markdown_report": markdown,
        "follow_up_questions": digest["follow_up_questions"],
        "output_path": results["save_report"],
    }


SCRIPT = PROJECT_ROOT / "scripts" / "restate_writer_service.py"


class WriterService(ManagedProcess):
    startable = True
    """Always started by the tool (a configured target may be a deployment running elsewhere)."""

    def __init__(self, config: DrillConfig, state: StateDir, procs: ProcessTable, host: str, name: str = NAME) -> None:
        what = "writer service" if name == NAME else f"writer service {name}"
        super().__init__(procs, name, what, state.log_file(name))
        self.config = config
        self.state = state
        self.host = host
        """Where it listens: the config's address, or the Docker bridge's gateway for a container."""
        self.stop_timeout_s = config.service.grace_period_s + 5.0

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.config.service.port}"

    def health_url(self) -> str:
        return f"{self.url}/health"

    def listens(self) -> list[Listen]:
        return [Listen(self.host, self.config.service.port, "service.port")]

    def config_stamp(self, config_file: str | None = None) -> ConfigStamp:
        """The digest of what the writer process reads from its config (every section but the drill
        runtime's, `extends` and `${VAR}` resolved) and where it listens."""
        config = self.config
        if config_file is not None and config_file != config.source:
            config = load(config_file)
        settings = config.model_dump(mode="json", exclude={"runtime", "local_model", "target", "source"})
        # The identity it requires is part of what it runs with: a writer started open (or with another
        # key) is restarted, not reused, once the config requires this state dir's key.
        stamp = {"writer": settings, "host": self.host, "identity": self.identity_key()}
        return ConfigStamp(config_digest(stamp), config_file or config.source)

    def identity_key(self) -> str | None:
        """The Restate public key it must require (`runtime.request_identity`), None: it accepts anyone."""
        return self.state.identity_public_key() if self.config.runtime.request_identity else None

    # -- actions ------------------------------------------------------------------------------------

    def start(self, config_file: str | None = None) -> ProcessRecord:
        """Start with the stack's config, or `config_file` (a drill's derived config); reuse a live one
        running on the same config, restart (and say so) one running on another."""
        env = {
            **os.environ,
            CONFIG_ENV: config_file or self.config.source,
            HOST_OVERRIDE_ENV: self.host,
        }
        if self.config.runtime.request_identity:  # only requests signed by the stack's Restate server
            env[IDENTITY_KEY_FILE_ENV] = str(self.state.request_identity().public_key_file)
        else:
            env.pop(IDENTITY_KEY_FILE_ENV, None)  # not inherited from the caller's environment either
        # Started from the project root: relative paths in the config mean the same to it as to drillkit.
        stamp = self.config_stamp(config_file)
        return self.spawn_or_reuse([sys.executable, str(SCRIPT)], env=env, cwd=PROJECT_ROOT, stamp=stamp)

    def kill(self, sig: signal.Signals = signal.SIGTERM, timeout_s: float | None = None) -> Stopped | None:
        """Signal the recorded pid (verified first); SIGTERM gets the grace period before escalation."""
        return super().kill(sig, self.stop_timeout_s if timeout_s is None else timeout_s)

    def kill_record(self, record: ProcessRecord, sig: signal.Signals) -> Stopped | None:
        """Signal exactly the process a drill saw and will name in its report."""
        return self.procs.kill_record(record, sig, self.stop_timeout_s)

    def restart(self, config_file: str | None = None) -> ProcessRecord:
        self.kill(signal.SIGTERM)
        return self.start(config_file)

    def derived_config(self, name: str, overrides: dict[str, Any]) -> str:
        """A copy of the stack's config file with `overrides` (dotted keys), validated like any config,
        under the state dir; drills point the writer at a broken endpoint with it."""
        data = apply_overrides(read_config_data(Path(self.config.source)), overrides)
        path = self.state.root / "drill-configs" / f"{name}.yaml"
        validate_mapping(data, source=f"{path} (derived from {self.config.source})")
        write_text_atomically(path, yaml.safe_dump(data, sort_keys=False))
        return str(path)

    def beside(self, name: str, overrides: dict[str, Any]) -> WriterService:
        """A second writer process beside this one (another revision, another port): its own record
        `name` in the process table, its own log and health check, on a derived config with `overrides`;
        the same state dir, ledger and request identity. Not started: the caller starts and stops it."""
        path = self.derived_config(name, overrides)
        return WriterService(load(path), self.state, self.procs, self.host, name)

    # -- probes -------------------------------------------------------------------------------------

    def steps(self) -> list[str]:
        return step_order(self.config.pipeline.sections)

    def ledger(self, invocation_id: str | None = None) -> list[LedgerEntry]:
        """The ledger's lines: a start line when a step body begins, an end line when it ends."""
        return read_ledger(self.config.ledger_file(), invocation_id)

    def executions(self, invocation_id: str | None = None) -> list[Execution]:
        """Real executions of step bodies (start and end paired; a killed one never ended)."""
        return executions(self.ledger(invocation_id))

    def ledger_follower(self) -> LedgerFollower:
        return LedgerFollower(self.config.ledger_file())

    def executions_follower(self, invocation_id: str) -> ExecutionsFollower:
        return ExecutionsFollower(self.ledger_follower(), invocation_id)


class ExecutionsFollower:
    """One invocation's executions, kept up to date by reading only the lines appended since the last
    look: the ledger is shared by every drill on this state dir and grows, so a wait that polls it must
    not parse it whole each time (11,000 lines take 0.1 s here)."""

    def __init__(self, follower: LedgerFollower, invocation_id: str) -> None:
        self._follower = follower
        self._invocation_id = invocation_id
        self._entries: list[LedgerEntry] = []

    def update(self) -> list[Execution]:
        self._entries += [e for e in self._follower.new_entries() if e.invocation_id == self._invocation_id]
        return executions(self._entries)
