"""`glus models`, `glus download`, `glus --version` and the help texts, offline.

`glus download` runs its real Hub code against a hand-made local cache in huggingface-hub's layout
(``models--Org--Name/refs/main`` + ``snapshots/<commit>/...``) holding the tiny checkpoint and the CLIP
tower its config.json names; with HF_HUB_OFFLINE=1 nothing may touch the network.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from glus_cli import __version__
from glus_cli.errors import NetworkError
from glus_cli.testing.checkpoint import build_checkpoint
from glus_cli.testing.videos import write_synthetic_video
from tests.cli_helpers import run_glus

MODEL_ID = "Org/Name"
TOWER_ID = "Org/TinyClip"
COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("GLUS_DEBUG", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("GLUS_WEIGHTS_DIR", str(tmp_path / "empty-cache"))
    monkeypatch.chdir(tmp_path)


def _add_to_cache(cache: Path, repo_id: str, folder: Path) -> Path:
    """Copy `folder` into `cache` as the `main` snapshot of `repo_id`, as huggingface-hub lays it out."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(COMMIT)
    snapshot = repo / "snapshots" / COMMIT
    shutil.copytree(folder, snapshot)
    return snapshot


@pytest.fixture(scope="module")
def hub_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A hand-made Hub cache with `Org/Name` (tiny GLUS) whose config.json names `Org/TinyClip`."""
    root = tmp_path_factory.mktemp("hub")
    checkpoint = build_checkpoint(root / "build", vision_tower_name=TOWER_ID)
    cache = root / "cache"
    _add_to_cache(cache, MODEL_ID, checkpoint.path)
    _add_to_cache(cache, TOWER_ID, checkpoint.vision_tower)
    return cache


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    code, output = run_glus(["--version"], capsys)
    assert code == 0
    assert output.strip() == f"glus-cli {__version__}"


def test_help_shows_examples(capsys: pytest.CaptureFixture[str]) -> None:
    code, output = run_glus(["--help"], capsys)
    assert code == 0, output
    assert "glus segment video.mp4" in output
    for command in ("segment", "download", "models"):
        assert command in output
    code, output = run_glus(["segment", "--help"], capsys)
    assert code == 0, output
    assert 'glus segment video.mp4 "the dog that jumps first"' in output
    assert "--format" in output and "--output-dir" in output


def test_models_on_an_empty_cache(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "250")  # one table row per line
    code, output = run_glus(["models"], capsys)
    assert code == 0, output
    rows = [line for line in output.splitlines() if "Swindl/GLUS-" in line]
    assert any("Swindl/GLUS-A (default)" in row for row in rows), output
    assert any("Swindl/GLUS-S" in row for row in rows), output
    for row in rows:
        cells = [cell.strip() for cell in row.split("│")]
        assert "no" in cells, row
        assert "yes" not in cells, row


def test_download_not_cached_offline(capsys: pytest.CaptureFixture[str]) -> None:
    code, output = run_glus(["download", "Org/NotCached", "--quiet"], capsys)
    assert code == NetworkError.exit_code, output
    assert "Traceback" not in output
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Org/NotCached" in errors[0] and "offline" in errors[0], output
    assert "unset HF_HUB_OFFLINE to download" in errors[0] and "PATH" not in errors[0]
    assert "glus download" not in errors[0] and "local folder" not in errors[0]


def test_download_from_the_local_cache_then_segment(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path, hub_cache: Path
) -> None:
    monkeypatch.setenv("GLUS_WEIGHTS_DIR", str(hub_cache))
    monkeypatch.setenv("COLUMNS", "250")
    code, output = run_glus(["download", MODEL_ID, "--quiet"], capsys)
    assert code == 0, output
    snapshot = hub_cache / "models--Org--Name" / "snapshots" / COMMIT
    tower = hub_cache / "models--Org--TinyClip" / "snapshots" / COMMIT
    assert "ready:" in output and str(snapshot) in output.replace("\n", ""), output
    assert str(tower) in output.replace("\n", ""), output

    code, output = run_glus(["models"], capsys)
    assert code == 0, output
    assert any(MODEL_ID in line and "yes" in line for line in output.splitlines()), output

    video = write_synthetic_video(tmp_path / "clip.mp4", 2, size=(40, 56), fps=5.0)
    out = tmp_path / "out"
    args = ["segment", str(video), "the red circle", "--model", MODEL_ID, "-o", str(out), "--quiet"]
    code, output = run_glus(
        [*args, "--context-frames", "1", "--query-frames", "1", "--device", "cpu"], capsys
    )
    assert code == 0, output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["model"]["source"] == MODEL_ID
    assert Path(summary["model"]["checkpoint_dir"]) == snapshot
    assert Path(summary["model"]["vision_tower"]) == tower
    assert sorted(p.name for p in (out / "00-the-red-circle").glob("*.png")) == ["00000.png", "00001.png"]


def test_models_at_80_columns_shows_whole_ids(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The ids are what users copy into --model: a narrow terminal wraps other columns, never an id."""
    from glus_cli.manifest import load_manifest

    monkeypatch.setenv("COLUMNS", "80")
    code, output = run_glus(["models"], capsys)
    assert code == 0, output
    assert max(len(line) for line in output.splitlines()) <= 80, output
    manifest = load_manifest()
    for repo_id in [entry.repo_id for entry in (*manifest.models, *manifest.vision_towers)]:
        assert repo_id in output, (repo_id, output)
