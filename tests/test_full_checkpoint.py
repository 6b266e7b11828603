"""The full-size synthetic checkpoint's builder: the released layout, streamed shards, `[SEG]` at every depth.

The 7B shape itself is too large for the suite; these tests build it narrow (`NARROW_SHAPE`: hidden 128, tiny
CLIP and SAM2) at 2 and 32 layers. What makes greedy decoding answer `[SEG]` at depth is the gain rule
(`seg_row_gain`), and the size of the residual stream it must beat does not depend on the width (the
builder scales the layers' and `lm_head`'s std as 1/sqrt(width)), so a narrow model checks the rule that
the 7B one relies on; the margin test runs at LLaMA's real vocabulary size (32004 rows).
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from glus_cli.errors import InputError
from glus_cli.model.glus import load_glus
from glus_cli.pipeline import segment_video
from glus_cli.protocol import SegmentationOptions
from glus_cli.testing.full_checkpoint import FULL_SHAPE, NARROW_SHAPE, build_full_checkpoint, llama_tensors
from glus_cli.testing.tokenizer import TINY_VOCAB_SIZE, build_tiny_tokenizer
from glus_cli.testing.videos import synthetic_frame

REAL_VOCAB, REAL_SEG_ID = 32004, 32003


class _Frames:
    def __init__(self, num_frames: int) -> None:
        self.num_frames = num_frames

    def read(self, index: int) -> np.ndarray:
        return synthetic_frame(index, (64, 96))


def test_full_shape_is_llama_7b_clip_l_and_sam2_l() -> None:
    assert (FULL_SHAPE.hidden_size, FULL_SHAPE.intermediate_size, FULL_SHAPE.num_hidden_layers) == (
        4096,
        11008,
        32,
    )
    assert (FULL_SHAPE.clip_hidden_size, FULL_SHAPE.clip_layers, FULL_SHAPE.sam2_config) == (
        1024,
        24,
        "sam2_hiera_l.yaml",
    )


def test_layout_is_the_released_one_with_one_shard_per_layer_group(tmp_path: Path) -> None:
    checkpoint = build_full_checkpoint(tmp_path, shape=NARROW_SHAPE, num_layers=3, layers_per_shard=2)
    index = json.loads((checkpoint.path / "pytorch_model.bin.index.json").read_text(encoding="utf-8"))
    files = sorted(set(index["weight_map"].values()))
    assert files == [f"pytorch_model-0000{i}-of-00002.bin" for i in (1, 2)]
    assert index["weight_map"]["model.embed_tokens.weight"] == files[0]
    assert index["weight_map"]["model.layers.1.mlp.down_proj.weight"] == files[0]
    assert index["weight_map"]["model.layers.2.mlp.down_proj.weight"] == files[1]
    assert index["weight_map"]["lm_head.weight"] == files[1]
    assert index["weight_map"]["model.visual_model.no_mem_embed"] == files[1]
    assert not list(checkpoint.path.glob("*.tmp"))
    config = json.loads((checkpoint.path / "config.json").read_text(encoding="utf-8"))
    assert (config["num_hidden_layers"], config["vocab_size"]) == (3, TINY_VOCAB_SIZE)
    total = 0
    for name in files:
        for key, tensor in torch.load(checkpoint.path / name, weights_only=True).items():
            expected = torch.float32 if key.endswith("rotary_emb.inv_freq") else torch.bfloat16
            assert tensor.dtype == expected, key
            total += tensor.numel() * tensor.element_size()
    assert index["metadata"]["total_size"] == total


@pytest.mark.parametrize(("num_layers", "seg"), [(2, "always"), (2, "never"), (32, "always")])
def test_greedy_decoding_answers_seg_at_every_depth(tmp_path: Path, num_layers: int, seg: str) -> None:
    checkpoint = build_full_checkpoint(
        tmp_path, shape=NARROW_SHAPE, num_layers=num_layers, seg=seg, layers_per_shard=8
    )
    model = load_glus(checkpoint.path, device="cpu", dtype="bfloat16")
    assert model.info.dtype == "bfloat16"
    options = SegmentationOptions(schedule="reference", host_threads=False)
    results = list(segment_video(model, _Frames(2), ["the dog on the left", "a red car"], options))
    assert len(results) == 4
    assert all(result.is_seg == (seg == "always") for result in results)


@pytest.mark.parametrize("num_layers", [2, 32])
def test_seg_margin_holds_with_the_real_vocabulary(num_layers: int) -> None:
    """At LLaMA's 32004 rows the `[SEG]` logit beats every other token by a wide margin on random prompts."""
    spec = replace(NARROW_SHAPE, num_hidden_layers=num_layers)
    config = LlamaConfig(
        vocab_size=REAL_VOCAB,
        hidden_size=spec.hidden_size,
        intermediate_size=spec.intermediate_size,
        num_hidden_layers=num_layers,
        num_attention_heads=spec.num_attention_heads,
        rms_norm_eps=1e-6,
    )
    state = dict(llama_tensors(spec, REAL_VOCAB, REAL_SEG_ID, "always", seed=0))
    llm = LlamaForCausalLM(config)
    llm.load_state_dict({k: v for k, v in state.items() if not k.endswith("inv_freq")})
    llm = llm.to(torch.bfloat16).eval()
    generator = torch.Generator().manual_seed(1)
    with torch.inference_mode():
        ids = torch.randint(0, REAL_SEG_ID, (3, 400), generator=generator)
        logits = llm(ids).logits[:, -1].float()
    seg_logit = logits[:, REAL_SEG_ID]
    best_other = logits[:, :REAL_SEG_ID].max(dim=1).values
    assert bool((seg_logit > 2 * best_other).all()), (seg_logit, best_other)


def test_tokenizer_folder_gives_its_vocabulary(tmp_path: Path) -> None:
    tokenizer_dir = tmp_path / "tokenizer"
    build_tiny_tokenizer(tokenizer_dir, seed=3)
    checkpoint = build_full_checkpoint(
        tmp_path / "ckpt", shape=NARROW_SHAPE, num_layers=1, tokenizer_dir=tokenizer_dir
    )
    for name in ("tokenizer.model", "added_tokens.json"):
        assert (checkpoint.path / name).read_bytes() == (tokenizer_dir / name).read_bytes()
    with pytest.raises(InputError, match=r"lacks tokenizer\.model"):
        build_full_checkpoint(tmp_path / "other", shape=NARROW_SHAPE, tokenizer_dir=tmp_path / "missing")
