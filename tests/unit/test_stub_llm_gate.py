"""The stub model's hold: a completion asked while held is answered only after the release."""

from __future__ import annotations

import socket
import threading

import httpx

from drillkit.components.stub_llm import StubLlm
from drillkit.procs import ProcessTable
from drillkit.waits import poll


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_held_completion_waits_for_the_release(tmp_path):
    stub = StubLlm(ProcessTable(tmp_path / "procs"), tmp_path / "stub.log", free_port())
    stub.start()
    try:
        assert stub.hold() == 0
        answered = threading.Event()
        status: list[int] = []

        def ask() -> None:
            body = {"model": "stub", "messages": [{"role": "user", "content": "hi"}]}
            status.append(httpx.post(f"{stub.url}/v1/chat/completions", json=body, timeout=30).status_code)
            answered.set()

        asker = threading.Thread(target=ask)
        asker.start()
        # The request is parked at the gate: the stub itself counts it, no timing involved.
        poll(stub.waiting, lambda n: n == 1, "the request parked at the hold", 30)
        assert not answered.is_set()
        assert stub.release() == 1
        asker.join(30)
        assert status == [200]
        # A hold may let the next answers through first: the first passes, the second is parked.
        stub.hold(after=1)
        ask()
        assert status == [200, 200]
        second = threading.Thread(target=ask)
        second.start()
        poll(stub.waiting, lambda n: n == 1, "the second request parked", 30)
        assert stub.release() == 1
        second.join(30)
        assert status == [200, 200, 200]
    finally:
        stub.stop()
