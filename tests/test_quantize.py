"""`--quantize`: the LLaMA decoder loads through bitsandbytes, the rest stays in full precision."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from glus_cli.model.glus import load_glus
from glus_cli.pipeline import segment
from glus_cli.testing.checkpoint import build_checkpoint

bitsandbytes = pytest.importorskip("bitsandbytes")
pytest.importorskip("accelerate")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_checkpoint(tmp_path_factory.mktemp("quantize")).path


def test_8bit_llm_segments_close_to_full_precision(checkpoint: Path) -> None:
    frames = [np.full((40, 56, 3), 90, np.uint8)]
    reference = segment(load_glus(checkpoint, device="cpu"), frames, "the box")
    model = load_glus(checkpoint, device="cpu", quantize="8bit")

    assert isinstance(model.language.llm.model.layers[0].self_attn.q_proj, bitsandbytes.nn.Linear8bitLt)
    assert type(model.language.text_hidden_fcs[0][0]).__name__ == "Linear"  # the [SEG] head is not quantised
    assert model.info.quantize == "8bit"
    masks = segment(model, frames, "the box")
    assert [mask.shape for mask in masks] == [(40, 56)]
    agreement = [float((a == b).mean()) for a, b in zip(reference, masks, strict=True)]
    assert min(agreement) > 0.9, agreement
