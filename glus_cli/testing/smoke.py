"""`glus check --smoke`: the whole command line on a tiny random checkpoint, offline, in seconds.

A 3-frame video with sound and a tiny checkpoint in the official layout (`build_checkpoint`) are written
to a temporary folder; then `glus segment` runs on them in a child process, exactly as a user runs it, in
every output format, offline, with its own empty model cache. The masks are meaningless (the weights are
random); what is checked is that every part of the installation works together and that every file a
run promises is there.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from glus_cli.errors import SmokeTestError
from glus_cli.outputs import FORMATS
from glus_cli.preview import PREVIEW_FILENAME
from glus_cli.resume import RECORD_NAME
from glus_cli.testing.checkpoint import build_checkpoint
from glus_cli.testing.videos import write_video_with_sound

SMOKE_FRAMES = 3
SMOKE_EXPRESSION = "the red circle"
_OUTPUT_TAIL = 2000
"""Characters of the child's output quoted when it fails."""


@dataclass(frozen=True)
class SmokeResult:
    """What the smoke test ran and found.

    Attributes:
        seconds: wall-clock seconds, from building the checkpoint to the last check.
        device: the device the run used.
        files: the files of the expression's folder, by name.
    """

    seconds: float
    device: str
    files: tuple[str, ...]


def run_smoke_test(device: str = "auto") -> SmokeResult:
    """Build the tiny checkpoint and video, run `glus segment` on them in every format, check the outputs.

    Raises:
        SmokeTestError: the command failed (its output's tail is in the message) or a file is missing.
    """
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="glus-smoke-") as folder:
        root = Path(folder)
        checkpoint = build_checkpoint(root / "model").path
        video = write_video_with_sound(root / "clip.mp4", SMOKE_FRAMES)
        out = root / "out"
        command = [sys.executable, "-c", "from glus_cli.cli import main; main()", "segment", str(video)]
        command += [SMOKE_EXPRESSION, "--model", str(checkpoint), "--device", device, "-o", str(out), "-q"]
        for name in FORMATS:
            command += ["--format", name]
        environment = {**os.environ, "HF_HUB_OFFLINE": "1", "GLUS_WEIGHTS_DIR": str(root / "cache")}
        done = subprocess.run(command, capture_output=True, text=True, env=environment, check=False)
        if done.returncode != 0:
            tail = (done.stdout + done.stderr).strip()[-_OUTPUT_TAIL:]
            raise SmokeTestError(f"glus segment exited with {done.returncode}: {tail}")
        result = _check_outputs(out)
    return SmokeResult(round(time.perf_counter() - started, 1), result[0], result[1])


def _check_outputs(out: Path) -> tuple[str, tuple[str, ...]]:
    """The device of the run and the files of its one expression folder, each checked to be there."""
    try:
        summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
        (record,) = summary["expressions"]
    except (OSError, ValueError, KeyError) as error:
        raise SmokeTestError(f"the run wrote no usable summary.json: {error}") from error
    folder = Path(record["output_dir"])
    frames = [f"{index:05d}.png" for index in range(SMOKE_FRAMES)]
    overlay = (record.get("overlay") or {}).get("file", "overlay")
    expected = [*frames, *(f"palette/{name}" for name in frames), "masks_rle.json", overlay]
    expected += [PREVIEW_FILENAME, RECORD_NAME]
    missing = [name for name in expected if not (folder / name).is_file()]
    if missing:
        raise SmokeTestError(f"the run did not write {', '.join(missing)} in {folder.name}")
    files = tuple(sorted(str(path.relative_to(folder)) for path in folder.rglob("*") if path.is_file()))
    return str(summary["model"]["device"]), files
