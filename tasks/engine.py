"""A private Docker engine, for the Docker backend where none runs."""

from __future__ import annotations

from types import ModuleType

from invoke.collection import Collection

from tasks._edge import CONFIG_HELP, stack_for, task


def _engine_steps() -> ModuleType:
    """drillkit.engine_steps, imported when an engine task runs: it brings docker-py, which the rest skip."""
    from drillkit import engine_steps

    return engine_steps


@task(name="install", help={"config": CONFIG_HELP})
def install(c, config=None):
    """Install Debian's docker.io when no dockerd is on this machine (root; needs the Debian mirror)."""
    with stack_for(c, config):
        _engine_steps().install_engine()


@task(
    name="start",
    help={
        "config": CONFIG_HELP,
        "image": "also build the configured Restate image from the native binary if the engine lacks it",
    },
)
def start(c, config=None, image=True):
    """Start a private dockerd under the state dir (reused when running); prints its DOCKER_HOST."""
    with stack_for(c, config) as stack:
        _engine_steps().start_engine(stack, build=image)


@task(name="stop", help={"config": CONFIG_HELP})
def stop(c, config=None):
    """Stop the private dockerd by its recorded PID."""
    with stack_for(c, config) as stack:
        _engine_steps().stop_engine(stack)


@task(name="image", help={"config": CONFIG_HELP})
def image(c, config=None):
    """Build the configured Restate image (docker import of the native binary and a CA bundle)."""
    with stack_for(c, config) as stack:
        _engine_steps().build_image(stack)


ns = Collection("engine", install, start, stop, image)
