"""Serve `WriterAgentRestate` (the Agents SDK writer) from one process:

    python targets/agents_writer/service.py

Environment (all optional): PORT (9081), HOST (127.0.0.1), OPENAI_BASE_URL (http://127.0.0.1:8091/v1),
OPENAI_API_KEY (a dummy for local servers), WRITER_MODEL (smollm2), OPENAI_TIMEOUT_S (60),
WRITER_MAX_TOKENS (640), WRITER_TEMPERATURE (0.2), AGENTS_WRITER_ALLOWED_ROOTS (/tmp, `:`-separated),
AGENTS_WRITER_TOOL_FAIL_FIRST (0), RESTATE_IDENTITY_KEY (accept only requests signed by that server),
AGENTS_WRITER_FORCE_TOOL_TAG (llama.cpp compatibility, see llamacpp.py), AGENTS_WRITER_GRACE_S (5),
OPENAI_MAX_CONCURRENCY (0: no limit; model requests beyond it wait before being sent),
AGENTS_WRITER_INACTIVITY_TIMEOUT_S (Restate's inactivity timeout for the service; unset: the server's).

One process, because a drill kills the pid it recorded (the `hypercorn` command's supervisor would leave
its worker serving). SIGTERM goes through restate-sdk's shutdown hook: the SDK replaces the loop's SIGTERM
handler on the first request, so a handler set with `loop.add_signal_handler` would never run.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path

if __package__ in (None, ""):
    # Run as a script from any directory: the project root makes `targets` and `writer_service` importable.
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import httpx2
import restate
from agents import set_default_openai_api, set_default_openai_client, set_tracing_disabled
from hypercorn.asyncio import serve
from hypercorn.config import Config
from openai import AsyncOpenAI
from restate.server import install_shutdown_hook

from targets.agents_writer import settings as env_settings
from targets.agents_writer.llamacpp import ModelTransport
from targets.agents_writer.writer import SERVICE, build_service

log = logging.getLogger("agents_writer")


def openai_client(settings: env_settings.Settings) -> AsyncOpenAI:
    """The client every agent of this process uses. No retries inside it: Restate retries the step.
    Chat completions, not the Responses API: what local OpenAI-compatible servers implement."""
    http = httpx2.AsyncClient(
        transport=ModelTransport(settings.tool_call_tag, settings.max_concurrency),
        timeout=httpx2.Timeout(settings.timeout_s, connect=min(5.0, settings.timeout_s)),
    )
    return AsyncOpenAI(base_url=settings.base_url, api_key=settings.api_key, max_retries=0, http_client=http)


def hypercorn_config(settings: env_settings.Settings) -> Config:
    config = Config()
    config.bind = [f"{settings.host}:{settings.port}"]
    config.graceful_timeout = settings.grace_period_s
    config.h2_max_concurrent_streams = 2**31 - 1  # Restate multiplexes every invocation on one h2 connection
    config.accesslog = None
    return config


def use_openai_client(settings: env_settings.Settings) -> AsyncOpenAI:
    """The Agents SDK's default client for every agent of this process: chat completions against the
    configured OpenAI-compatible server, no trace upload to OpenAI from a local service."""
    client = openai_client(settings)
    set_default_openai_client(client, use_for_tracing=False)
    set_default_openai_api("chat_completions")
    set_tracing_disabled(True)
    return client


async def serve_writer(settings: env_settings.Settings) -> None:
    client = use_openai_client(settings)
    app = restate.app(services=[build_service(settings)], identity_keys=list(settings.identity_keys) or None)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def request_stop(signame: str) -> None:
        if not stop.is_set():
            log.info("%s received: draining for up to %.0f s, then exiting", signame, settings.grace_period_s)
        stop.set()

    install_shutdown_hook(loop, lambda: request_stop("SIGTERM"), signal.SIGTERM)
    install_shutdown_hook(loop, lambda: request_stop("SIGINT"), signal.SIGINT)
    log.info(
        "%s serving on http://%s:%d, model %s at %s (timeout %.0f s)%s%s%s",
        SERVICE,
        settings.host,
        settings.port,
        settings.model,
        settings.base_url,
        settings.timeout_s,
        f", save_report fails its first {settings.tool_fail_first}" if settings.tool_fail_first else "",
        ", requests signed by Restate only" if settings.identity_keys else "",
        f", forced tool calls prefilled with <{settings.tool_call_tag}>" if settings.tool_call_tag else "",
    )
    try:
        await serve(app, hypercorn_config(settings), mode="asgi", shutdown_trigger=stop.wait)
    finally:
        await client.close()
    log.info("stopped")


def run_main(name: str, serve_with: Callable[[env_settings.Settings], Coroutine[object, object, None]]) -> int:
    """The process entry of the durable service and of its plain baseline: logging, settings from the
    environment (exit 2 naming the bad variable), then serve until SIGTERM/SIGINT (exit 1 if the port
    cannot be bound)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stdout)
    for noisy in ("httpx", "httpx2", "openai", "openai.agents"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        settings = env_settings.load()
    except env_settings.SettingsError as exc:
        print(f"{name}: {exc}", file=sys.stderr)
        return 2
    try:
        asyncio.run(serve_with(settings))
    except OSError as exc:
        log.error("cannot serve on %s:%d: %s", settings.host, settings.port, exc)
        return 1
    return 0


def main() -> int:
    return run_main("agents_writer", serve_writer)


if __name__ == "__main__":
    sys.exit(main())
