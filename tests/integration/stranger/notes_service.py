"""A Restate service written the way a stranger to this repository would write one: it imports nothing
of ours. `Notes.summarize` asks its model twice in steps that share one name (`ask`), then stores the
answer in a file (`store`). It reads everything from the environment:

    LLM_URL           OpenAI-compatible base URL (…/v1)
    NOTES_PORT        where it serves (default 9085)
    NOTES_FAIL_STORE  the first N executions of `store` in this process raise (a retryable error)

The drills get no help from it: no ledger, no headers, no hooks but the one above.
"""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import httpx
import restate
from hypercorn.asyncio import serve
from hypercorn.config import Config
from restate.server import install_shutdown_hook

notes = restate.Service("Notes")
store_failures_left = int(os.environ.get("NOTES_FAIL_STORE", "0"))


async def ask(question: str) -> str:
    async with httpx.AsyncClient(timeout=httpx.Timeout(60.0, connect=2.0)) as client:
        answer = await client.post(
            os.environ["LLM_URL"].rstrip("/") + "/chat/completions",
            json={"model": "any", "max_tokens": 24, "messages": [{"role": "user", "content": question}]},
        )
        answer.raise_for_status()
        return str(answer.json()["choices"][0]["message"]["content"])


@notes.handler()
async def summarize(ctx: restate.Context, request: dict) -> dict:
    topic, folder = str(request["topic"]), Path(str(request["dir"]))

    async def first() -> str:
        return await ask(f"Three words about {topic}.")

    idea = await ctx.run_typed("ask", first)

    async def second() -> str:
        return await ask(f"One sentence about {topic}, using: {idea}")

    sentence = await ctx.run_typed("ask", second)

    async def store() -> str:
        global store_failures_left
        if store_failures_left > 0:
            store_failures_left -= 1
            raise RuntimeError("store failed on purpose (NOTES_FAIL_STORE)")
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{ctx.request().id}.txt"
        path.write_text(f"{idea}\n{sentence}\n", encoding="utf-8")
        return str(path)

    path = await ctx.run_typed("store", store)
    return {"path": path, "idea": idea, "sentence": sentence}


async def main() -> None:
    config = Config()
    config.bind = [f"127.0.0.1:{os.environ.get('NOTES_PORT', '9085')}"]
    config.graceful_timeout = 5
    stop = asyncio.Event()
    install_shutdown_hook(asyncio.get_running_loop(), stop.set, signal.SIGTERM)
    await serve(restate.app(services=[notes]), config, mode="asgi", shutdown_trigger=stop.wait)


if __name__ == "__main__":
    asyncio.run(main())
