"""The machinery every task module shares: how flags are built and checked, and how drillkit's errors become
exit codes (tasks/__init__.py lists them). The task modules beside this one hold only tasks.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

from invoke.context import Context
from invoke.exceptions import Exit
from invoke.parser.argument import Argument
from invoke.tasks import Task as InvokeTask
from invoke.tasks import task as invoke_task

from drillkit import config as drill_config
from drillkit import console, flags, preflight, progress
from drillkit.errors import ConfigError, DrillError
from drillkit.flags import FlagError
from drillkit.reports.record import exit_code
from drillkit.stack import Stack

CONFIG_HELP = "config file (default: $RESTATE_WRITER_CONFIG, else configs/local.yaml)"
SHORT_FLAGS = {"config": "c", "verbose": "v"}  # the only short flags: one meaning on every task

progress.install(console.ConsoleObserver())  # the library reports progress; this edge draws it


class LenientArgument(Argument):
    """A numeric flag (an integer or float default) whose value the task checks: Invoke's own cast of
    `--tail x` or `--rate abc` is a ValueError traceback (exit 1); the raw text is kept instead and the
    task's `flags.whole`/`flags.number` says what is wrong (one line, exit 2)."""

    def set_value(self, value: object, cast: bool = True) -> None:
        try:
            super().set_value(value, cast)
        except (TypeError, ValueError):
            self.raw_value = value
            self._value = value


class BooleanArgument(Argument):
    """A boolean flag that also takes a word: `--keep-up`, `--no-resume` where the default is on, and
    `--keep-up=true|false|yes|no|on|off|1|0` in any case.

    Why this way: the plain `inv` entry point runs Invoke's own Program and parser; a project controls only
    its Task and Argument classes (a root Collection subclass is copied into a plain one when Invoke loads
    the tasks). The parser splits `--keep-up=yes` into the flag and a next token `yes`, which a plain bool
    flag cannot take ("No idea what 'yes' is!"). This argument stays a bool to Invoke, so `--no-x` and the
    help read as before, but once its flag is seen it waits for a value like Invoke's `optional=` arguments
    do: a word that follows is its value (checked by `checked` below: a bad one is one `error:` line and
    exit 2), another of the task's flags or the end of the line leaves it simply on. What Invoke's optional
    values bring with them: the word may also follow after a space (`--keep-up yes`), and a task name right
    after the bare flag is refused by Invoke as ambiguous (`inv up --http1-1 status`: write `--http1-1=true`
    or put the flag last); an Invoke option such as `-h` right after it is read as its value, and the error
    says to put it first.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**{**kwargs, "optional": True})
        self.awaiting_word = False

    @property
    def takes_value(self) -> bool:
        return self.awaiting_word

    def set_value(self, value: object, cast: bool = True) -> None:
        if isinstance(value, bool) and cast:
            # The parser saw the flag itself: True for --x, False for --no-x. Only after --x may a word follow;
            # Invoke waits for an optional value while raw_value is None, so it stays None until then.
            self._value = value
            self.awaiting_word = value
            self.raw_value = None if value else value
        elif not cast:
            # No word came (Invoke's "optional flag went by with no value"): the flag's own value stands.
            self._value = True if self._value is None else self._value
            self.raw_value = self._value
            self.awaiting_word = False
        else:  # the word: kept as typed, turned into a bool (or refused) when the task is called
            self._value = self.raw_value = value
            self.awaiting_word = False


class Task(InvokeTask):  # type: ignore[type-arg]
    """Every task's flags, built one way: no automatic short flags (one took `-h` from help on `inv up` and
    gave one letter different meanings on different drills), only SHORT_FLAGS; integers checked by the task;
    booleans that take a word (`BooleanArgument`); a default stated in every help text (taken from the
    signature when the text does not say it)."""

    def arg_opts(self, name: str, default: Any, taken_names: set[str]) -> dict[str, object]:
        opts: dict[str, object] = super().arg_opts(name, default, taken_names)
        if name in SHORT_FLAGS:
            opts["names"] = [*opts["names"], SHORT_FLAGS[name]]  # type: ignore[misc]
        text = str(opts.get("help") or "")
        if "default" not in text and default is not None and default is not inspect.Parameter.empty:
            shown = ("on" if default else "off") if isinstance(default, bool) else default
            opts["help"] = f"{text} (default: {shown})".strip()
        return opts

    def get_arguments(self, ignore_unknown_help: bool | None = None) -> list[Argument]:
        kept = dict(self.help)  # Invoke pops each help text as it builds a flag; help can be asked for twice
        try:
            arguments: list[Argument] = super().get_arguments(ignore_unknown_help)
        finally:
            self.help = kept
        return [_rebuilt(a) for a in arguments]


REBUILT: dict[object, type[Argument]] = {int: LenientArgument, float: LenientArgument, bool: BooleanArgument}


def _rebuilt(argument: Argument) -> Argument:
    """A numeric or boolean flag as this package's Argument class, every other setting kept. A float flag
    becomes a text flag (the task's declaration turns it into a number): Invoke's help shows no value for a
    float flag at all (`--rate` read like a switch), and `--rate=STRING` at least says a value follows, as
    `--deadline` always did."""
    klass = REBUILT.get(argument.kind)
    if klass is None:
        return argument
    return klass(
        names=argument.names,
        kind=str if argument.kind is float else argument.kind,
        default=argument.default,
        help=argument.help,
        positional=argument.positional,
        incrementable=argument.incrementable,
        attr_name=argument.attr_name,
    )


def checked(body: Callable[..., Any]) -> Callable[..., Any]:
    """The task's body with its flags checked where it is called: a boolean given as a word becomes a bool,
    and a value that cannot be used (a FlagError, from drillkit.flags or a drill's declaration) is one
    `error:` line and exit 2, never a traceback."""
    booleans = [n for n, p in inspect.signature(body).parameters.items() if isinstance(p.default, bool)]

    @functools.wraps(body)  # keeps the signature Invoke reads the flags from
    def run(c: Context, *args: Any, **kwargs: Any) -> Any:
        try:
            for name in booleans:
                if name in kwargs:
                    kwargs[name] = _boolean(name.replace("_", "-"), kwargs[name])
            return body(c, *args, **kwargs)
        except FlagError as exc:
            usage(str(exc))

    return run


def _boolean(flag: str, value: object) -> bool:
    if isinstance(value, str) and value.startswith("-"):  # an Invoke option read as the flag's word
        raise FlagError(f"--{flag} {value!r}: not true or false; give {value} before the task's flags")
    return flags.boolean(flag, value)


def task(**kwargs: Any) -> Callable[[Callable[..., Any]], Task]:
    """invoke.task with this package's flag rules (`Task`, `checked`)."""
    kwargs.setdefault("klass", Task)
    kwargs.setdefault("auto_shortflags", False)
    return lambda body: invoke_task(**kwargs)(checked(body))


def usage(message: str) -> NoReturn:
    """A flag's value that cannot be used: one line on stderr, exit 2, never a traceback."""
    console.error(message)
    raise Exit(code=2)


@contextmanager
def stack_for(c: Context, config: str | None) -> Iterator[Stack]:
    """A Stack for the config; drillkit errors become a clean non-zero exit with their message
    (2: a config error or a flag's value, 1: anything else)."""
    try:
        stack = Stack(drill_config.load(drill_config.config_file(config, c.config.get("drill", {}).get("config"))))
    except ConfigError as exc:
        console.error(f"config: {exc}")
        raise Exit(code=2) from None
    try:
        yield stack
    except ConfigError as exc:
        console.error(f"config: {exc}" + _other_configs(stack))
        raise Exit(code=2) from None
    except FlagError:
        raise  # `checked` says it, exit 2
    except DrillError as exc:
        console.error(str(exc) + _other_configs(stack))
        raise Exit(code=1) from None
    finally:
        stack.close()


def _other_configs(stack: Stack) -> str:
    """An error while a cluster (or any part) started with another config runs: say which, and where."""
    try:
        text = preflight.other_configs_text(stack)
    except DrillError:
        return ""
    return f"\n  ({text})" if text else ""


def path_or_none(value: str | None) -> Path | None:
    return Path(value) if value else None


def finish(verdicts: list[str]) -> None:
    """Exit 0 on PASS, 1 on FAIL or error, 3 when a drill was INCONCLUSIVE (the environment failed)."""
    code = exit_code(verdicts)
    if code:
        raise Exit(code=code)
