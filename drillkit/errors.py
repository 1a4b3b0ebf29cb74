"""One base exception; third-party failures are wrapped once, with their evidence."""

from __future__ import annotations

from collections.abc import Sequence


class DrillError(Exception):
    """Anything drillkit cannot do. Tasks turn it into a non-zero exit with this message."""


class ConfigError(DrillError):
    """A config file is missing or invalid; the message names the file, the field and the value."""


class ConfigMismatch(ConfigError):
    """A running component was started with another config, and restarting it would not be what the user
    expects (the message names both configs and what to do)."""


class Inconclusive(DrillError):
    """The environment failed before the fault could be judged (the model never answered, the target
    step was never reached, a fault could not be injected as planned): neither PASS nor FAIL."""


class ComponentError(DrillError):
    """A component would not start, stop or answer."""


class CommandError(DrillError):
    """An external command failed; carries the command line, exit code and output."""

    def __init__(self, argv: Sequence[str], returncode: int, stdout: str, stderr: str) -> None:
        self.argv = list(argv)
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
        detail = (stderr or stdout).strip()[-2000:]
        super().__init__(f"`{' '.join(self.argv)}` exited {returncode}" + (f":\n{detail}" if detail else ""))


class HttpError(DrillError):
    """An HTTP endpoint answered with an error status, or could not be reached."""

    def __init__(self, method: str, url: str, status: int | None, body: str) -> None:
        self.method = method
        self.url = url
        self.status = status
        self.body = body
        what = f"HTTP {status}" if status is not None else "unreachable"
        super().__init__(f"{method} {url}: {what}" + (f": {body.strip()[:1000]}" if body else ""))


class ProcessMismatch(DrillError):
    """A recorded PID now belongs to another process (or changed): it is never signalled."""
