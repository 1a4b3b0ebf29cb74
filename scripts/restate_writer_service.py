#!/usr/bin/env python3
"""Serve WriterAgentRestate on 127.0.0.1:9080 (h2c and HTTP/1.1), as in the HOW-TO:

RESTATE_WRITER_CONFIG=configs/local.yaml python scripts/restate_writer_service.py
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # runnable from a checkout, installed or not

from writer_service.server import main

if __name__ == "__main__":
    sys.exit(main())
