"""The memory check's estimate is an upper bound, with >= 5% headroom, on the peak RSS of real runs.

`glus segment` runs in a subprocess (its `summary.json` reports the process's peak RSS and the estimate
it checked) for every plan the CPU offers, quantised ones included, on a full-shape checkpoint reduced in
depth and width so that the suite stays fast: an LLaMA of 8 layers at width 2048 (0.8 GB in bf16: its
linear layers are most of the weights, as in the 7B model, so a missing term of the LLM's loading shows;
at width 1024 the runtime's constant hid the bf16 copy that 8-bit loading holds) with the tiny CLIP and
SAM2. The 7B figures are in benchmarks/README.md (`benchmarks/bench_full.py`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from glus_cli.testing.full_checkpoint import NARROW_SHAPE, build_full_checkpoint
from glus_cli.testing.videos import write_frame_folder

SHAPE = replace(NARROW_SHAPE, hidden_size=2048, intermediate_size=5504, num_attention_heads=16)
MIN_HEADROOM = 1.05


@pytest.fixture(scope="module")
def checkpoint_and_frames(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("estimate")
    build_full_checkpoint(root / "ckpt", shape=SHAPE, num_layers=8, layers_per_shard=4)
    return root / "ckpt", write_frame_folder(root / "frames", 2, (120, 160))


@pytest.mark.parametrize(
    ("flags", "expressions"),
    [
        ([], 1),
        (["--quantize", "8bit"], 1),
        (["--quantize", "4bit"], 1),
        (["--llm-batch-size", "4"], 4),  # four prompts per LLM forward: the batch's cache and activations
    ],
    ids=["bfloat16", "8bit", "4bit", "bfloat16-batch4"],
)
def test_estimate_is_above_the_measured_peak(
    checkpoint_and_frames: tuple[Path, Path], tmp_path: Path, flags: list[str], expressions: int
) -> None:
    checkpoint, frames = checkpoint_and_frames
    out = tmp_path / "out"
    command = [sys.executable, "-c", "from glus_cli.cli import main; main()", "segment", str(frames)]
    command += ["the red ball", "the green square", "the background", "a moving object"][:expressions]
    command += ["--model", str(checkpoint / "glus"), "--vision-tower", str(checkpoint / "clip")]
    command += ["--device", "cpu", "--dtype", "bfloat16", *flags, "--output-dir", str(out), "--quiet"]
    done = subprocess.run(
        command, env={**os.environ, "HF_HUB_OFFLINE": "1"}, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    peak = summary["memory"]["peak_rss_mib"] * 2**20
    estimate = summary["model"]["memory_estimate_gb"] * 1e9
    assert estimate >= MIN_HEADROOM * peak, (estimate / 1e9, peak / 1e9)
