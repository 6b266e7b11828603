"""Shared pytest setup: every test runs offline and with a fixed seed."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
