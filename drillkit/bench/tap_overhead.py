"""What the LLM tap costs: latency it adds per request, and throughput with and without it.

    python -m drillkit.bench.tap_overhead [--sequential 300] [--concurrency 50] [--requests 1000]

Against the zero-latency stub endpoint (`drillkit.components.stub_llm`, delay 0) so that only the tap's own
cost remains. Sequential requests alternate between the stub directly and the stub through the tap, on
one keep-alive connection each, so drift on a shared machine hits both alike; the added latency is the
median of the per-pair differences. Throughput: `concurrency` callers sending `requests` completions in
all, direct and through the tap, alternated over `rounds`. Both processes are started and stopped as
recorded processes, like a stack's. Run it inside `scripts/loopback-only --contained` on offline machines.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from drillkit.components import llm_tap
from drillkit.procs import ProcessTable
from drillkit.waits import poll

BODY = {"model": "stub", "messages": [{"role": "user", "content": "Write one sentence."}], "max_tokens": 16}
HEADERS = {"X-Restate-Invocation-Id": "inv_bench", "X-Writer-Step": "section:1", "X-Writer-Attempt": "1"}
PATH = "/v1/chat/completions"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1.0, trust_env=False).status_code == 200
    except httpx.RequestError:
        return False


def _sequential_ms(direct: str, tapped: str, n: int, warmup: int = 20) -> dict[str, float]:
    timeout = httpx.Timeout(10.0)
    with (
        httpx.Client(base_url=direct, timeout=timeout, trust_env=False) as d,
        httpx.Client(base_url=tapped, timeout=timeout, trust_env=False) as t,
    ):

        def once(client: httpx.Client) -> float:
            started = time.perf_counter()
            client.post(PATH, json=BODY, headers=HEADERS).raise_for_status()
            return (time.perf_counter() - started) * 1000

        for _ in range(warmup):
            once(d)
            once(t)
        pairs = [(once(d), once(t)) for _ in range(n)]
    direct_ms = [p[0] for p in pairs]
    tapped_ms = [p[1] for p in pairs]
    added = sorted(p[1] - p[0] for p in pairs)
    return {
        "direct_median_ms": statistics.median(direct_ms),
        "tapped_median_ms": statistics.median(tapped_ms),
        "added_median_ms": statistics.median(added),
        "added_p90_ms": added[int(0.9 * (len(added) - 1))],
        "requests": n,
    }


async def _throughput(base_url: str, concurrency: int, total: int) -> float:
    """Completions per second from `concurrency` keep-alive connections.

    The callers speak HTTP/1.1 over plain asyncio streams: httpx's AsyncClient tops out near 180 requests/s
    at 50 connections on this machine (encode/httpx#3215), which would measure the load generator."""
    url = httpx.URL(base_url)
    body = json.dumps(BODY).encode()
    head = (
        f"POST {PATH} HTTP/1.1\r\nhost: {url.host}:{url.port}\r\ncontent-type: application/json\r\n"
        + "".join(f"{k}: {v}\r\n" for k, v in HEADERS.items())
        + f"content-length: {len(body)}\r\n\r\n"
    ).encode()
    share = [total // concurrency + (1 if i < total % concurrency else 0) for i in range(concurrency)]
    connections: list[list[Any]] = [list(await asyncio.open_connection(url.host, url.port)) for _ in range(concurrency)]

    async def caller(connection: list[Any], count: int) -> None:
        for _ in range(count):
            reader, writer = connection
            writer.write(head + body)
            status_and_headers = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").lower()
            if not status_and_headers.startswith("http/1.1 200"):
                raise RuntimeError(f"{base_url}: {status_and_headers.splitlines()[0]}")
            length = int(status_and_headers.split("content-length:", 1)[1].split("\r\n", 1)[0])
            await reader.readexactly(length)
            if "\r\nconnection: close" in status_and_headers:  # hypercorn's keep_alive_max_requests
                writer.close()
                connection[:] = await asyncio.open_connection(url.host, url.port)

    try:
        await asyncio.gather(*(caller(c, 2) for c in connections))  # every connection warm first
        started = time.perf_counter()
        await asyncio.gather(*(caller(c, n) for c, n in zip(connections, share, strict=True)))
        return total / (time.perf_counter() - started)
    finally:
        for connection in connections:
            connection[1].close()


def measure_tap_overhead(
    work_dir: Path,
    sequential: int = 300,
    concurrency: int = 50,
    requests: int = 1000,
    rounds: int = 3,
) -> dict[str, Any]:
    """Start a stub and a tap in front of it, measure, stop both; the figures as plain numbers."""
    procs = ProcessTable(work_dir / "procs")
    stub_port, tap_port = _free_port(), _free_port()
    direct, tapped = f"http://127.0.0.1:{stub_port}", f"http://127.0.0.1:{tap_port}"
    record = work_dir / "llm-tap.jsonl"
    stub_argv = [sys.executable, "-m", "drillkit.components.stub_llm", "--port", str(stub_port), "--delay-ms", "0"]
    procs.spawn("stub-llm", stub_argv, work_dir / "logs" / "stub-llm.log")
    try:
        poll(lambda: _ok(f"{direct}/health"), bool, "the stub LLM", 30, interval_s=0.02)
        argv = llm_tap.tap_argv(sys.executable, "127.0.0.1", tap_port, direct, record)
        procs.spawn("llm-tap", argv, work_dir / "logs" / "llm-tap.log")
        llm_tap.wait_healthy(tapped, timeout_s=30)
        latency = _sequential_ms(direct, tapped, sequential)
        direct_rps, tapped_rps = [], []
        for _ in range(rounds):
            direct_rps.append(asyncio.run(_throughput(direct, concurrency, requests)))
            tapped_rps.append(asyncio.run(_throughput(tapped, concurrency, requests)))
    finally:
        procs.kill("llm-tap")
        procs.kill("stub-llm")
    recorded = llm_tap.read_tap(record)
    return {
        "sequential": {k: round(v, 3) for k, v in latency.items()},
        "concurrent": {
            "concurrency": concurrency,
            "requests_per_round": requests,
            "rounds": rounds,
            "direct_rps_median": round(statistics.median(direct_rps), 1),
            "tapped_rps_median": round(statistics.median(tapped_rps), 1),
            "direct_rps": [round(x, 1) for x in direct_rps],
            "tapped_rps": [round(x, 1) for x in tapped_rps],
        },
        "recorded": {
            "requests": len(recorded),
            "ended_ok": sum(r.outcome == "ok" for r in recorded),
        },
        "load_average": list(os.getloadavg()),
        "cpus": os.cpu_count(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sequential", type=int, default=300, help="sequential request pairs")
    parser.add_argument("--concurrency", type=int, default=50, help="concurrent callers for throughput")
    parser.add_argument("--requests", type=int, default=1000, help="requests per throughput round")
    parser.add_argument("--rounds", type=int, default=3, help="throughput rounds, each direct then tapped")
    parser.add_argument("--dir", type=Path, default=None, help="work dir (process records, logs, the record)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tap-overhead-") as tmp:
        work = args.dir or Path(tmp)
        figures = measure_tap_overhead(work, args.sequential, args.concurrency, args.requests, args.rounds)
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
