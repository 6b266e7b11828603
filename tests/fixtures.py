"""Session-wide synthetic GLUS checkpoints, loaded tiny models and small videos for the model-core tests.

A pytest plugin: test modules list it in `pytest_plugins = ["tests.fixtures"]`, so its session fixtures
are defined once and built once per session, whichever modules ask for them (importing the fixture
functions into several modules instead would build them once per module). `tests` is importable because
the suite runs as `python -m pytest` from the repository root (Makefile, CI).

Building a tiny checkpoint takes about a second, loading it a fraction of one; a query frame costs
0.3-0.5 s (SAM2 at 1024 pixels), so the videos here are 1-4 frames of 64×96.

PYTEST_DONT_REWRITE: test modules import the helpers below before pytest loads this module as a plugin,
so it cannot be assertion-rewritten (it has no asserts); the marker silences pytest's warning about it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sentencepiece as spm

from glus_cli.model.glus import GlusModel, load_glus
from glus_cli.model.tokenizer import GlusTokenizer
from glus_cli.pipeline import segment_video
from glus_cli.protocol import ArraySource, FrameResult, SegmentationOptions
from glus_cli.testing.checkpoint import SyntheticCheckpoint, build_checkpoint
from glus_cli.testing.tokenizer import build_tiny_tokenizer

VIDEO_SIZE = (64, 96)
"""(H, W) of the default test video."""
EXPRESSION = "the dog"
"""The default expression: gives 5-80% foreground per frame on the default tiny model and video."""
OTHER_EXPRESSION = "the green square"
"""An expression whose masks differ from EXPRESSION's on the default model and video."""


def synthetic_frame(index: int, size: tuple[int, int] = VIDEO_SIZE) -> np.ndarray:
    """RGB uint8 (H, W, 3): a colour gradient with a red disc and a green square that move with `index`."""
    height, width = size
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    image = np.stack([x / width * 200 + 20, y / height * 160 + 40, np.full_like(x, 90.0)], axis=-1)
    cy, cx, radius = height * (0.35 + 0.1 * index), width * (0.3 + 0.15 * index), min(height, width) * 0.25
    image[(y - cy) ** 2 + (x - cx) ** 2 < radius**2] = (230, 40, 40)
    half = height * 0.15
    image[(abs(y - height * 0.7) < half) & (abs(x - width * (0.75 - 0.1 * index)) < half)] = (40, 200, 70)
    return image.clip(0, 255).astype(np.uint8)


def synthetic_video(num_frames: int, size: tuple[int, int] = VIDEO_SIZE) -> list[np.ndarray]:
    """`num_frames` frames of `synthetic_frame`."""
    return [synthetic_frame(index, size) for index in range(num_frames)]


def run(
    model: GlusModel,
    frames: Sequence[np.ndarray],
    expressions: Sequence[str] = (EXPRESSION,),
    options: SegmentationOptions | None = None,
    keyframes: Sequence[int | None] | None = None,
) -> list[FrameResult]:
    """Every `FrameResult` of `segment_video`, in the order it yields them."""
    return list(segment_video(model, ArraySource(frames), expressions, options, keyframes=keyframes))


def file_digests(folder: Path, names: Sequence[str] | None = None) -> dict[str, str]:
    """sha256 of the files in `folder` (all of them, or `names`), by name."""
    paths = [folder / name for name in names] if names is not None else sorted(folder.iterdir())
    return {path.name: hashlib.sha256(path.read_bytes()).hexdigest() for path in paths if path.is_file()}


class CheckpointFactory:
    """Builds synthetic checkpoints under one session folder, once per distinct set of arguments.

    `copy` distinguishes builds with identical arguments (two folders written independently).
    """

    def __init__(self, root: Path) -> None:
        self._root = root
        self._built: dict[tuple, SyntheticCheckpoint] = {}

    def __call__(self, *, copy: int = 0, **kwargs: Any) -> SyntheticCheckpoint:
        key = (copy, *sorted(kwargs.items()))
        if key not in self._built:
            name = "-".join([f"{k}={v}" for k, v in sorted(kwargs.items())] + [f"copy{copy}"])
            self._built[key] = build_checkpoint(self._root / name, **kwargs)
        return self._built[key]


class ModelFactory:
    """Loads checkpoints on the CPU in float32 unless told otherwise, once per (folder, load options)."""

    def __init__(self) -> None:
        self._loaded: dict[tuple, GlusModel] = {}

    def __call__(self, checkpoint: SyntheticCheckpoint | Path, **kwargs: Any) -> GlusModel:
        path = checkpoint.path if isinstance(checkpoint, SyntheticCheckpoint) else Path(checkpoint)
        kwargs.setdefault("dtype", "float32")  # the parity tests' precision, whatever `auto` picks here
        key = (str(path), *sorted(kwargs.items()))
        if key not in self._loaded:
            self._loaded[key] = load_glus(path, device="cpu", **kwargs)
        return self._loaded[key]


@pytest.fixture(scope="session")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> CheckpointFactory:
    """Builds (and caches) synthetic checkpoints: `checkpoints(seed=1, weight_format="safetensors")`."""
    return CheckpointFactory(tmp_path_factory.mktemp("checkpoints"))


@pytest.fixture(scope="session")
def models() -> ModelFactory:
    """Loads (and caches) models: `models(checkpoint, fuser_gamma="official-eval")`."""
    return ModelFactory()


@pytest.fixture(scope="session")
def tiny_checkpoint(checkpoints: CheckpointFactory) -> SyntheticCheckpoint:
    """The default tiny checkpoint: seed 0, `[SEG]` always, two .bin shards with an index (as released)."""
    return checkpoints()


@pytest.fixture(scope="session")
def tiny_model(models: ModelFactory, tiny_checkpoint: SyntheticCheckpoint) -> GlusModel:
    """`tiny_checkpoint` loaded on the CPU in fp32."""
    return models(tiny_checkpoint)


@pytest.fixture(scope="session")
def never_checkpoint(checkpoints: CheckpointFactory) -> SyntheticCheckpoint:
    """A tiny checkpoint whose LLM never answers `[SEG]`."""
    return checkpoints(seg="never")


@pytest.fixture(scope="session")
def never_model(models: ModelFactory, never_checkpoint: SyntheticCheckpoint) -> GlusModel:
    """`never_checkpoint` loaded on the CPU."""
    return models(never_checkpoint)


@pytest.fixture(scope="session")
def single_frame_results(tiny_model: GlusModel) -> list[FrameResult]:
    """`tiny_model` on a 1-frame video with EXPRESSION, the same written "The Dog.", and OTHER_EXPRESSION."""
    return run(tiny_model, synthetic_video(1), [EXPRESSION, "The Dog.", OTHER_EXPRESSION])


@pytest.fixture(scope="session")
def tokenizer_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The test vocabulary's tokenizer files (sentencepiece model trained here, added tokens), seed 0."""
    folder = tmp_path_factory.mktemp("tiny-tokenizer")
    build_tiny_tokenizer(folder)
    return folder


@pytest.fixture(scope="session")
def tok(tokenizer_folder: Path) -> GlusTokenizer:
    """glus-cli's tokenizer on the test vocabulary."""
    return GlusTokenizer.from_pretrained(tokenizer_folder)


@pytest.fixture(scope="session")
def sp(tokenizer_folder: Path) -> spm.SentencePieceProcessor:
    """Plain sentencepiece on the test vocabulary's model, for checking the tokenizer against it."""
    return spm.SentencePieceProcessor(model_file=str(tokenizer_folder / "tokenizer.model"))
