"""A full-size synthetic GLUS checkpoint: LLaMA-7B at its real depth, CLIP ViT-L/14 and SAM2 hiera-L.

`build_full_checkpoint(root)` writes the layout of the official release (`glus/` with `config.json`, the
tokenizer files and bf16 `pytorch_model-0000k-of-0000n.bin` shards with their index; `clip/` with the
vision tower) the way `glus_cli.testing.checkpoint.build_checkpoint` does, but streams the LLaMA: each
tensor is drawn, rounded to bf16 and added to the current shard, and a shard is written (to a temporary
name, then renamed) as soon as it holds `layers_per_shard` layers. Building the 7B shape therefore holds
one shard (about 1.6 GB at 4 layers) plus CLIP-L and SAM2-L, and fits a 24 GiB machine.

The weights follow the GLUS-shaped builder's rules, so greedy decoding answers `[SEG]`: layer weights of
std 0.2 * sqrt(64 / width), unit-variance embeddings with the constant `[SEG]` channel that no layer
writes to, and a `[SEG]` row whose gain grows with depth (`seg_row_gain`). `lm_head`'s other rows have
std 0.02 * sqrt(4096 / width), LLaMA-7B's init at its own width, so a narrower test model sees logits of
the same size as the 7B one.

With `tokenizer_dir` (a folder with the LLaMA `tokenizer.model` and GLUS's `added_tokens.json`, as in the
released checkpoints) the checkpoint has the real vocabulary (32004 rows, `[SEG]` = 32003); without, the
tiny test vocabulary.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Literal

import torch
from safetensors.torch import save_file

from glus_cli.errors import InputError
from glus_cli.model.tokenizer import (
    ADDED_TOKENS_FILE,
    SPECIAL_TOKENS_MAP_FILE,
    TOKENIZER_CONFIG_FILE,
    TOKENIZER_MODEL_FILE,
    GlusTokenizer,
)
from glus_cli.testing.checkpoint import (
    _LLAMA_WEIGHT_STD,
    _SEG_CHANNEL,
    SHAPES,
    TINY_SAM2_FILE,
    ModelShape,
    SegBehaviour,
    SyntheticCheckpoint,
    _config_json,
    _heads_state,
    _write_clip,
    seeded_sam2,
    seg_row_gain,
)
from glus_cli.testing.tokenizer import build_tiny_tokenizer

logger = logging.getLogger(__name__)

FULL_SHAPE = ModelShape(4096, 11008, 32, 32, 1024, 4096, 24, 16, "sam2_hiera_l.yaml")
"""LLaMA-7B (32 layers, hidden 4096, MLP 11008, 32 heads), CLIP ViT-L/14 and SAM2 hiera-L."""
NARROW_SHAPE = replace(SHAPES["tiny"], hidden_size=128, intermediate_size=344, num_attention_heads=4)
"""LLaMA-7B's proportions (MLP 2.69x, head dim 32) at width 128, with the tiny CLIP and SAM2: for tests."""
_LM_HEAD_STD_AT_7B = 0.02
_TOKENIZER_FILES = (TOKENIZER_MODEL_FILE, ADDED_TOKENS_FILE, SPECIAL_TOKENS_MAP_FILE, TOKENIZER_CONFIG_FILE)


def build_full_checkpoint(
    root: str | Path,
    *,
    num_layers: int | None = None,
    tokenizer_dir: str | Path | None = None,
    shape: ModelShape = FULL_SHAPE,
    seed: int = 0,
    seg: SegBehaviour = "always",
    weight_format: Literal["bin", "safetensors"] = "bin",
    layers_per_shard: int = 4,
) -> SyntheticCheckpoint:
    """Write a full-size GLUS checkpoint under `root` (`glus/` and `clip/`), one shard in memory at a time.

    Args:
        root: parent folder; `glus/` and `clip/` are created in it.
        num_layers: LLaMA layers (default the shape's, 32 for LLaMA-7B).
        tokenizer_dir: a GLUS/LLaMA tokenizer folder to copy (the real vocabulary); default the tiny one.
        shape: widths and depths (tests pass a narrower shape; benchmarks the default).
        seed: every random tensor derives from it.
        seg: `always` makes greedy decoding answer `[SEG]`, `never` something else.
        weight_format: `.bin` shards (as released) or `.safetensors` shards.
        layers_per_shard: LLaMA layers per weight shard (bounds the memory the build holds).

    Raises:
        InputError: `num_layers` or `layers_per_shard` below 1, or a tokenizer folder without its files.
    """
    spec = replace(shape, num_hidden_layers=num_layers or shape.num_hidden_layers)
    if spec.num_hidden_layers < 1 or layers_per_shard < 1:
        raise InputError("num_layers and layers_per_shard must be at least 1")
    root = Path(root)
    glus_dir, clip_dir = root / "glus", root / "clip"
    glus_dir.mkdir(parents=True, exist_ok=True)
    _write_tokenizer(glus_dir, tokenizer_dir, seed)
    tokenizer = GlusTokenizer.from_pretrained(glus_dir)
    _write_clip(clip_dir, spec, seed)

    sam2 = seeded_sam2(glus_dir, spec, seed)  # a narrow test shape: the tiny SAM2
    out_dim = int(sam2.hidden_dim)
    tail = dict(_heads_state(spec, out_dim, seed))
    tail.update({f"model.visual_model.{k}": v for k, v in sam2.state_dict().items()})
    del sam2

    config = _config_json(spec, tokenizer, out_dim, str(clip_dir))
    if spec.sam2_config is None:
        config["sam2_config"] = TINY_SAM2_FILE
    shards = _llama_shards(spec, tokenizer, seg, seed, layers_per_shard, tail)
    _write_streamed_shards(glus_dir, shards, weight_format)
    (glus_dir / "config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    return SyntheticCheckpoint(path=glus_dir, vision_tower=clip_dir)


def _write_tokenizer(folder: Path, tokenizer_dir: str | Path | None, seed: int) -> None:
    if tokenizer_dir is None:
        build_tiny_tokenizer(folder, seed=seed)
        return
    source = Path(tokenizer_dir)
    missing = [name for name in _TOKENIZER_FILES if not (source / name).is_file()]
    if missing:
        raise InputError(f"tokenizer folder {source} lacks {', '.join(missing)}")
    for name in _TOKENIZER_FILES:
        shutil.copyfile(source / name, folder / name)


def llama_tensors(
    spec: ModelShape, vocab_size: int, seg_token_id: int, seg: SegBehaviour, seed: int
) -> Iterator[tuple[str, torch.Tensor]]:
    """The LLaMA's (name, bf16 tensor) pairs in file order: embeddings, each layer, final norm, lm_head.

    Drawn one tensor at a time (fp32, then rounded), so a caller that writes them out never holds more
    than it chooses to.
    """
    hidden, inter = spec.hidden_size, spec.intermediate_size
    generator = torch.Generator().manual_seed(seed + 1)
    std = _LLAMA_WEIGHT_STD * math.sqrt(SHAPES["tiny"].hidden_size / hidden)

    def normal(rows: int, cols: int, scale: float) -> torch.Tensor:
        return torch.empty(rows, cols).normal_(0.0, scale, generator=generator)

    embed = normal(vocab_size, hidden, 1.0)
    embed[:, _SEG_CHANNEL] = 2.0
    yield "model.embed_tokens.weight", embed.to(torch.bfloat16)
    del embed
    head_dim = hidden // spec.num_attention_heads
    inv_freq = 1.0 / (10000 ** (torch.arange(0, head_dim, 2).float() / head_dim))
    shapes = {
        "self_attn.q_proj": (hidden, hidden),
        "self_attn.k_proj": (hidden, hidden),
        "self_attn.v_proj": (hidden, hidden),
        "self_attn.o_proj": (hidden, hidden),
        "mlp.gate_proj": (inter, hidden),
        "mlp.up_proj": (inter, hidden),
        "mlp.down_proj": (hidden, inter),
    }
    for layer in range(spec.num_hidden_layers):
        prefix = f"model.layers.{layer}."
        for name, (rows, cols) in shapes.items():
            weight = normal(rows, cols, std)
            if name in ("self_attn.o_proj", "mlp.down_proj"):
                weight[_SEG_CHANNEL] = 0.0  # no layer writes to the [SEG] channel
            yield f"{prefix}{name}.weight", weight.to(torch.bfloat16)
        yield f"{prefix}input_layernorm.weight", torch.ones(hidden, dtype=torch.bfloat16)
        yield f"{prefix}post_attention_layernorm.weight", torch.ones(hidden, dtype=torch.bfloat16)
        yield f"{prefix}self_attn.rotary_emb.inv_freq", inv_freq  # saved by transformers 4.31, fp32
    yield "model.norm.weight", torch.ones(hidden, dtype=torch.bfloat16)
    lm_head = normal(vocab_size, hidden, _LM_HEAD_STD_AT_7B * math.sqrt(FULL_SHAPE.hidden_size / hidden))
    lm_head[:, _SEG_CHANNEL] = 0.0
    lm_head[seg_token_id] = 0.0
    gain = seg_row_gain(spec.num_hidden_layers)
    lm_head[seg_token_id, _SEG_CHANNEL] = gain if seg == "always" else -gain
    yield "lm_head.weight", lm_head.to(torch.bfloat16)


def _llama_shards(
    spec: ModelShape,
    tokenizer: GlusTokenizer,
    seg: SegBehaviour,
    seed: int,
    layers_per_shard: int,
    tail: dict[str, torch.Tensor],
) -> Iterator[dict[str, torch.Tensor]]:
    """Shards of `layers_per_shard` layers (the first with the embeddings); the last adds `tail`."""
    shard: dict[str, torch.Tensor] = {}
    layers_in_shard = 0
    for name, tensor in llama_tensors(spec, tokenizer.vocab_size, tokenizer.seg_token_id, seg, seed):
        shard[name] = tensor
        if name.endswith(".rotary_emb.inv_freq"):  # the layer's last tensor
            layers_in_shard += 1
            if layers_in_shard == layers_per_shard:
                yield shard
                shard, layers_in_shard = {}, 0
    shard.update({name: tensor.to(torch.bfloat16).contiguous() for name, tensor in tail.items()})
    yield shard


def _write_streamed_shards(
    folder: Path, shards: Iterator[dict[str, torch.Tensor]], weight_format: str
) -> None:
    """Write each shard as it comes (numbered afterwards, when their count is known), then the index."""
    stem, suffix = ("pytorch_model", "bin") if weight_format == "bin" else ("model", "safetensors")
    staged: list[tuple[Path, list[str]]] = []
    total = 0
    for index, shard in enumerate(shards):
        path = folder / f".{stem}-part{index}.{suffix}.tmp"
        if weight_format == "bin":
            torch.save(shard, path)
        else:
            save_file(shard, str(path), metadata={"format": "pt"})
        total += sum(t.numel() * t.element_size() for t in shard.values())
        staged.append((path, list(shard)))
        logger.info("wrote weight shard %d (%d tensors)", index + 1, len(shard))
    weight_map = {}
    for index, (path, names) in enumerate(staged, start=1):
        filename = f"{stem}-{index:05d}-of-{len(staged):05d}.{suffix}"
        path.replace(folder / filename)
        weight_map.update(dict.fromkeys(names, filename))
    index_path = folder / f"{stem}.{suffix}.index.json"
    temporary = index_path.with_name(index_path.name + ".tmp")
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    temporary.write_text(json.dumps(index, indent=2), encoding="utf-8")
    temporary.replace(index_path)
