"""Loaded by every Python started with this directory on PYTHONPATH (reliability tests only).

Installs the test-only call log and crash point of :mod:`tests.reliability.callog` when its
environment variables are set; otherwise does nothing (so ``python -m dr ...`` is unchanged).
"""

import os

if os.environ.get("DR_RELIABILITY_CALL_LOG") or os.environ.get("DR_RELIABILITY_HANG_AFTER"):
    from tests.reliability.callog import install

    install()
