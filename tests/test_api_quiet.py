"""The Python API loads quietly: no transformers progress bar and no load report for CLIP's text tower."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from glus_cli.model import load_glus
from glus_cli.testing.checkpoint import build_checkpoint


def test_load_glus_prints_nothing(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    checkpoint = build_checkpoint(tmp_path)
    # A full CLIP file, as openai/clip-vit-large-patch14's: a text tower the vision model does not load.
    weights = checkpoint.vision_tower / "model.safetensors"
    state = load_file(weights)
    state["text_model.embeddings.token_embedding.weight"] = torch.zeros(8, 4)
    save_file(state, weights, metadata={"format": "pt"})
    capfd.readouterr()
    with caplog.at_level(logging.WARNING):
        model = load_glus(checkpoint.path, device="cpu")
    out, err = capfd.readouterr()
    assert model.info.device == "cpu"
    assert out == "" and err == "", (out, err)
    assert not [record for record in caplog.records if record.name.startswith("transformers")], caplog.text
