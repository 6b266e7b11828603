"""Shared pytest setup: every test runs offline (the synthetic checkpoints fix their own seeds)."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
