"""The private Docker engine's steps (`inv engine.*`), apart from the HOW-TO's: they import docker-py,
which every other `inv` command should not pay for (a seventh of a second)."""

from __future__ import annotations

import os
from pathlib import Path

from drillkit import progress
from drillkit.binaries import SERVER
from drillkit.components import docker_engine
from drillkit.errors import DrillError
from drillkit.stack import Stack


def install_engine() -> None:
    docker_engine.install_engine()
    progress.ok("dockerd is installed")


def engine(stack: Stack) -> docker_engine.Dockerd:
    return docker_engine.Dockerd(stack.state.root, stack.procs, stack.state.log_file(docker_engine.PROCESS_NAME))


def start_engine(stack: Stack, build: bool = True) -> str:
    """Start the private engine, point this process's docker clients at it, build the image if asked."""
    dockerd = engine(stack)
    record = dockerd.start()
    url = dockerd.health_url()
    os.environ["DOCKER_HOST"] = url
    progress.ok(f"dockerd pid {record.pid} answers at {url}")
    progress.info(f"this tool finds it without DOCKER_HOST; other docker clients: export DOCKER_HOST={url}")
    if build:
        ensure_image(stack)
    return url


def ensure_image(stack: Stack) -> None:
    image = stack.rt.image()
    how = docker_engine.ensure_image(
        docker_engine.docker_client(stack.state.root), image, build_from=_native_server(stack)
    )
    progress.ok(f"image {image} is {how}")


def build_image(stack: Stack) -> None:
    image = stack.rt.image()
    docker_engine.build_image(docker_engine.docker_client(stack.state.root), _native_server(stack), image)
    progress.ok(f"built {image}")


def _native_server(stack: Stack) -> Path:
    found = stack.binaries.find(SERVER)
    if found is None:
        raise DrillError("restate-server is not installed: run `inv setup` first")
    return found[0]


def stop_engine(stack: Stack) -> None:
    if engine(stack).stop() is not None:
        progress.ok("dockerd stopped")
    else:
        progress.info("no private dockerd of ours was running")
