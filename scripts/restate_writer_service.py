#!/usr/bin/env python3
"""Serve WriterAgentRestate on 127.0.0.1:9080 (h2c and HTTP/1.1), as in the HOW-TO:

RESTATE_WRITER_CONFIG=configs/local.yaml python scripts/restate_writer_service.py
"""

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # runnable from a checkout, installed or not

from writer_service.config import CONFIG_ENV, FAULT_KEY_FILE_ENV, HOST_OVERRIDE_ENV, IDENTITY_KEY_FILE_ENV

ENVIRONMENT = f"""environment:
  {CONFIG_ENV}   config file (default configs/local.yaml); --config sets it
  {HOST_OVERRIDE_ENV}     address to listen on instead of the config's service.host
  {FAULT_KEY_FILE_ENV}  file holding the key that request faults must carry (drills set it)
  {IDENTITY_KEY_FILE_ENV}  file holding the Restate server's request identity public key
      (publickeyv1_...); set: only requests that server signed are served, others get 401 (drills set it)

Stops on SIGTERM or SIGINT after draining in-flight requests for service.grace_period_s.
`inv service.start` runs this with the project's config and records its pid."""


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="restate_writer_service.py",
        description="Serve WriterAgentRestate (handler run) for Restate, from one process.",
        epilog=ENVIRONMENT,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config", help=f"config file (default: ${CONFIG_ENV}, else configs/local.yaml)")
    return parser.parse_args(argv)


if __name__ == "__main__":
    args = parse_args(sys.argv[1:])  # --help and a bad flag answer before the heavy imports below
    if args.config:
        os.environ[CONFIG_ENV] = args.config
    from writer_service.server import main

    sys.exit(main())
