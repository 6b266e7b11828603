"""Fixtures of the CLI tests that run `glus` in-process: the tiny checkpoint and an isolated environment.

Use with ``pytest_plugins = ["tests.cli_fixtures"]`` and
``pytestmark = pytest.mark.usefixtures("cli_environment")``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from glus_cli.testing.checkpoint import build_checkpoint


@pytest.fixture(scope="session")
def cli_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny official-layout GLUS checkpoint folder (its CLIP tower beside it)."""
    return build_checkpoint(tmp_path_factory.mktemp("cli-ckpt")).path


@pytest.fixture
def cli_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No --debug from an earlier test, an empty model cache, and `tmp_path` as the working folder."""
    monkeypatch.delenv("GLUS_DEBUG", raising=False)
    monkeypatch.setenv("GLUS_WEIGHTS_DIR", str(tmp_path / "weights"))
    monkeypatch.chdir(tmp_path)
