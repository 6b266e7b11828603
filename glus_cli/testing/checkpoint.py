"""Randomly initialised GLUS checkpoints in the exact layout of the official releases, for tests and
benchmarks (the real 7B weights are not needed to exercise the real loading and inference code).

`build_checkpoint(root)` writes, with a fixed seed:
- `root/glus/`: `config.json` (the LLaVA/LLaMA/GLUS fields of the official file), the tokenizer files
  (`tokenizer.model` + `added_tokens.json` ...), weights as `pytorch_model-0000k-of-0000n.bin` shards with
  `pytorch_model.bin.index.json` (or safetensors), every tensor bf16 as released, including the
  `rotary_emb.inv_freq` buffers transformers 4.31 saved;
- `root/clip/`: a CLIP vision tower folder (`config.json`, weights, `preprocessor_config.json`) that
  `config.json`'s `vision_tower` names.

The "tiny" shape keeps what GLUS hard-codes (224-pixel CLIP with 14-pixel patches, so 256 patches and 64
image tokens; a 1024-pixel SAM2, so 256/128/64 feature maps) and shrinks widths and depths. Greedy
decoding answers `[SEG]` by construction (`seg="always"`): every embedding and image token carries a
positive constant in one channel that no layer writes to, and `lm_head`'s `[SEG]` row reads only that
channel. `seg="never"` flips the row's sign, so every frame takes the "no [SEG]" path. The LLaMA weights
are larger than transformers' default init, and the `[SEG]` head's output gain too, so that masks
depend on the expression and the frame.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
from safetensors.torch import save_file
from torch import nn
from transformers import CLIPVisionConfig, CLIPVisionModel, LlamaConfig, LlamaForCausalLM

from glus_cli.model.segmenter import build_sam2_model
from glus_cli.model.tokenizer import GlusTokenizer
from glus_cli.testing.tokenizer import build_tiny_tokenizer

Shape = Literal["tiny", "glus"]
SegBehaviour = Literal["always", "never"]

# The channel of the LLaMA residual stream that carries the `[SEG]` signal.
_SEG_CHANNEL = 0
_SEG_EMBEDDING_GAIN = 50.0
# Std of the LLaMA layers' weights at the tiny width (scaled as 1/sqrt(width) for wider shapes).
_LLAMA_WEIGHT_STD = 0.2
_SAM2_SEED_OFFSET = 12
# The `[SEG]` row's gain at 1 LLaMA layer; it grows with depth (see `seg_row_gain`).
_SEG_ROW_GAIN = 40.0


@dataclass(frozen=True)
class ModelShape:
    """Widths and depths of a synthetic GLUS checkpoint."""

    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    clip_hidden_size: int
    clip_intermediate_size: int
    clip_layers: int
    clip_heads: int
    sam2_config: str | None  # None: write TINY_SAM2_YAML into the checkpoint


SHAPES: dict[str, ModelShape] = {
    "tiny": ModelShape(64, 128, 2, 4, 32, 64, 3, 2, None),
    # Real widths where the cost lives (LLaMA-7B width with 2 layers, CLIP ViT-L/14, SAM2 hiera-L).
    "glus": ModelShape(4096, 11008, 2, 32, 1024, 4096, 24, 16, "sam2_hiera_l.yaml"),
}

# SAM2 at its real 1024-pixel resolution (GLUS hard-codes the 256/128/64 feature maps) with few channels
# and blocks. d_model 32 is the `[SEG]` embedding width (`out_dim`).
TINY_SAM2_YAML = """\
# @package _global_
model:
  _target_: sam2.modeling.sam2_base.SAM2Base
  image_encoder:
    _target_: sam2.modeling.backbones.image_encoder.ImageEncoder
    scalp: 1
    trunk:
      _target_: sam2.modeling.backbones.hieradet.Hiera
      embed_dim: 8
      num_heads: 1
      stages: [1, 1, 2, 1]
      global_att_blocks: [3]
      window_pos_embed_bkg_spatial_size: [7, 7]
      window_spec: [8, 4, 16, 8]
    neck:
      _target_: sam2.modeling.backbones.image_encoder.FpnNeck
      position_encoding:
        _target_: sam2.modeling.position_encoding.PositionEmbeddingSine
        num_pos_feats: 32
        normalize: true
        scale: null
        temperature: 10000
      d_model: 32
      backbone_channel_list: [64, 32, 16, 8]
      fpn_top_down_levels: [2, 3]
      fpn_interp_model: nearest
  memory_attention:
    _target_: sam2.modeling.memory_attention.MemoryAttention
    d_model: 32
    pos_enc_at_input: true
    layer:
      _target_: sam2.modeling.memory_attention.MemoryAttentionLayer
      activation: relu
      dim_feedforward: 64
      dropout: 0.1
      pos_enc_at_attn: false
      self_attention:
        _target_: sam2.modeling.sam.transformer.RoPEAttention
        rope_theta: 10000.0
        feat_sizes: [64, 64]
        embedding_dim: 32
        num_heads: 1
        downsample_rate: 1
        dropout: 0.1
      d_model: 32
      pos_enc_at_cross_attn_keys: true
      pos_enc_at_cross_attn_queries: false
      cross_attention:
        _target_: sam2.modeling.sam.transformer.RoPEAttention
        rope_theta: 10000.0
        feat_sizes: [64, 64]
        rope_k_repeat: true
        embedding_dim: 32
        num_heads: 1
        downsample_rate: 1
        dropout: 0.1
        kv_in_dim: 16
    num_layers: 1
  memory_encoder:
    _target_: sam2.modeling.memory_encoder.MemoryEncoder
    in_dim: 32
    out_dim: 16
    position_encoding:
      _target_: sam2.modeling.position_encoding.PositionEmbeddingSine
      num_pos_feats: 16
      normalize: true
      scale: null
      temperature: 10000
    mask_downsampler:
      _target_: sam2.modeling.memory_encoder.MaskDownSampler
      embed_dim: 32
      kernel_size: 3
      stride: 2
      padding: 1
    fuser:
      _target_: sam2.modeling.memory_encoder.Fuser
      layer:
        _target_: sam2.modeling.memory_encoder.CXBlock
        dim: 32
        kernel_size: 7
        padding: 3
        layer_scale_init_value: 1e-6
        use_dwconv: true
      num_layers: 2
  num_maskmem: 7
  image_size: 1024
  sigmoid_scale_for_mem_enc: 20.0
  sigmoid_bias_for_mem_enc: -10.0
  use_mask_input_as_output_without_sam: true
  directly_add_no_mem_embed: true
  use_high_res_features_in_sam: true
  multimask_output_in_sam: true
  iou_prediction_use_sigmoid: true
  use_obj_ptrs_in_encoder: true
  add_tpos_enc_to_obj_ptrs: false
  only_obj_ptrs_in_the_past_for_eval: true
  pred_obj_scores: true
  pred_obj_scores_mlp: true
  fixed_no_obj_ptr: true
  multimask_output_for_tracking: true
  use_multimask_token_for_obj_ptr: true
  multimask_min_pt_num: 0
  multimask_max_pt_num: 1
  use_mlp_for_obj_ptr_proj: true
  compile_image_encoder: false
"""
TINY_SAM2_FILE = "sam2_tiny.yaml"

# openai/clip-vit-large-patch14's preprocessor_config.json values.
_CLIP_PREPROCESSOR = {
    "crop_size": 224,
    "do_center_crop": True,
    "do_normalize": True,
    "do_resize": True,
    "feature_extractor_type": "CLIPFeatureExtractor",
    "image_mean": [0.48145466, 0.4578275, 0.40821073],
    "image_std": [0.26862954, 0.26130258, 0.27577711],
    "resample": 3,
    "size": 224,
}


@dataclass(frozen=True)
class SyntheticCheckpoint:
    """Paths of a synthetic checkpoint: the GLUS folder and the CLIP tower folder it names."""

    path: Path
    vision_tower: Path


def build_checkpoint(
    root: str | Path,
    *,
    seed: int = 0,
    shape: Shape = "tiny",
    seg: SegBehaviour = "always",
    weight_format: Literal["bin", "safetensors"] = "bin",
    num_shards: int = 2,
    vision_tower_name: str | None = None,
) -> SyntheticCheckpoint:
    """Write a GLUS checkpoint in the official layout under `root` (see the module docstring).

    Args:
        root: parent folder; `glus/` and `clip/` are created in it.
        seed: every random tensor derives from it; the same seed writes the same weights.
        shape: `tiny` for tests, `glus` for benchmarks (real widths, few LLaMA layers).
        seg: `always` makes greedy decoding answer `[SEG]`, `never` makes it answer something else.
        weight_format: `.bin` shards (as released) or `.safetensors` shards.
        num_shards: number of weight shards (with an index json when > 1).
        vision_tower_name: the `vision_tower` written into config.json (default: the CLIP folder's path).
    """
    root = Path(root)
    spec = SHAPES[shape]
    glus_dir, clip_dir = root / "glus", root / "clip"
    glus_dir.mkdir(parents=True, exist_ok=True)
    build_tiny_tokenizer(glus_dir, seed=seed)
    tokenizer = GlusTokenizer.from_pretrained(glus_dir)
    _write_clip(clip_dir, spec, seed)

    sam2 = seeded_sam2(glus_dir, spec, seed)
    out_dim = int(sam2.hidden_dim)

    llama_config = LlamaConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=spec.hidden_size,
        intermediate_size=spec.intermediate_size,
        num_hidden_layers=spec.num_hidden_layers,
        num_attention_heads=spec.num_attention_heads,
        max_position_embeddings=2048,
    )
    state = _llm_state(llama_config, tokenizer, seg, seed)
    state.update(_heads_state(spec, out_dim, seed))
    state.update({f"model.visual_model.{k}": v for k, v in sam2.state_dict().items()})
    state = {name: tensor.to(torch.bfloat16).contiguous() for name, tensor in state.items()}

    config = _config_json(spec, tokenizer, out_dim, vision_tower_name or str(clip_dir))
    if spec.sam2_config is None:
        config["sam2_config"] = TINY_SAM2_FILE
    (glus_dir / "config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    _write_shards(glus_dir, state, weight_format, num_shards)
    return SyntheticCheckpoint(path=glus_dir, vision_tower=clip_dir)


def _llm_state(config: LlamaConfig, tokenizer: GlusTokenizer, seg: SegBehaviour, seed: int) -> dict:
    torch.manual_seed(seed + 1)
    llm = LlamaForCausalLM(config)
    with torch.no_grad():
        # Weights large enough that the last position's hidden state depends on the whole prompt (the
        # expression, the images); transformers' 0.02 init makes a 2-layer LLaMA nearly the identity.
        # The std shrinks as 1/sqrt(width) so that each layer's gain, and with it the size of the residual
        # stream that the [SEG] channel must stand out of after the final norm, is the same at every width.
        std = _LLAMA_WEIGHT_STD * math.sqrt(SHAPES["tiny"].hidden_size / config.hidden_size)
        for name, param in llm.model.named_parameters():
            if param.dim() == 2 and name != "embed_tokens.weight":
                param.normal_(0.0, std)
        llm.model.embed_tokens.weight.normal_(0.0, 1.0)
        # The [SEG] channel: a constant in every token embedding that no layer writes to, so it stays
        # positive after the final norm; the [SEG] row of lm_head reads only that channel.
        llm.model.embed_tokens.weight[:, _SEG_CHANNEL] = 2.0
        for layer in llm.model.layers:
            layer.self_attn.o_proj.weight[_SEG_CHANNEL] = 0.0
            layer.mlp.down_proj.weight[_SEG_CHANNEL] = 0.0
        llm.lm_head.weight[:, _SEG_CHANNEL] = 0.0
        llm.lm_head.weight[tokenizer.seg_token_id] = 0.0
        gain = seg_row_gain(config.num_hidden_layers)
        llm.lm_head.weight[tokenizer.seg_token_id, _SEG_CHANNEL] = gain if seg == "always" else -gain
    state = dict(llm.state_dict())
    head_dim = config.hidden_size // config.num_attention_heads
    inv_freq = 1.0 / (10000 ** (torch.arange(0, head_dim, 2).float() / head_dim))
    for layer in range(config.num_hidden_layers):  # transformers 4.31 saved these persistent buffers
        state[f"model.layers.{layer}.self_attn.rotary_emb.inv_freq"] = inv_freq
    return state


def seg_row_gain(num_layers: int) -> float:
    """The `[SEG]` row's weight on the `[SEG]` channel for a LLaMA of `num_layers` layers.

    Every layer adds a random vector of about the same size to the residual stream, so the stream's RMS
    grows as the square root of the depth and the final RMSNorm shrinks the constant `[SEG]` channel by
    as much (measured with the 7B `lm_head` statistics and 32004 rows: the channel is 0.30 after the norm
    at 2 layers, 0.15 at 8, 0.08 at 32, where the best other token scores about 5). The gain grows the
    same way and keeps a margin of about 3x at every depth; a fixed gain of 20 loses at 32 layers.
    """
    return _SEG_ROW_GAIN * math.sqrt(num_layers)


def seeded_sam2(glus_dir: Path, spec: ModelShape, seed: int) -> torch.nn.Module:
    """`spec`'s SAM2, randomly initialised from `seed`; a shape without a SAM2 config gets the tiny SAM2,
    whose yaml is written into `glus_dir` (the checkpoint names it there)."""
    if spec.sam2_config is None:
        (glus_dir / TINY_SAM2_FILE).write_text(TINY_SAM2_YAML, encoding="utf-8")
        sam2_config = str(glus_dir / TINY_SAM2_FILE)
    else:
        sam2_config = spec.sam2_config
    # A randomly initialised SAM2 decoder is biased towards all-foreground or all-background masks;
    # this seed offset gives masks of 20-60% foreground that differ between expressions.
    torch.manual_seed(seed + _SAM2_SEED_OFFSET)
    return build_sam2_model(sam2_config, device="cpu")


def _heads_state(spec: ModelShape, out_dim: int, seed: int) -> dict:
    torch.manual_seed(seed + 2)
    projector = nn.Linear(spec.clip_hidden_size, spec.hidden_size)
    head = nn.Sequential(
        nn.Linear(spec.hidden_size, spec.hidden_size), nn.ReLU(), nn.Linear(spec.hidden_size, out_dim)
    )
    with torch.no_grad():
        projector.weight[_SEG_CHANNEL] = 0.0  # image tokens carry the same constant [SEG] channel
        projector.bias[_SEG_CHANNEL] = 2.0
        # A randomly initialised SAM2 decoder barely reacts to a unit-norm prompt token; a larger one
        # makes the masks depend on the expression.
        head[2].weight.mul_(_SEG_EMBEDDING_GAIN)
        head[2].bias.mul_(_SEG_EMBEDDING_GAIN)
    state = {f"model.mm_projector.{k}": v for k, v in projector.state_dict().items()}
    state.update({f"model.text_hidden_fcs.0.{k}": v for k, v in head.state_dict().items()})
    return state


def _write_clip(folder: Path, spec: ModelShape, seed: int) -> None:
    torch.manual_seed(seed + 4)
    config = CLIPVisionConfig(
        hidden_size=spec.clip_hidden_size,
        intermediate_size=spec.clip_intermediate_size,
        num_hidden_layers=spec.clip_layers,
        num_attention_heads=spec.clip_heads,
        image_size=224,
        patch_size=14,
        projection_dim=spec.clip_hidden_size,
    )
    CLIPVisionModel(config).save_pretrained(folder)
    (folder / "preprocessor_config.json").write_text(
        json.dumps(_CLIP_PREPROCESSOR, indent=2), encoding="utf-8"
    )


def _config_json(spec: ModelShape, tokenizer: GlusTokenizer, out_dim: int, vision_tower: str) -> dict:
    """The fields transformers 4.31 wrote for GLUSForCausalLM (reference §1.2), with this shape's sizes."""
    return {
        "_name_or_path": "synthetic-glus",
        "architectures": ["GLUSForCausalLM"],
        "bos_token_id": tokenizer.bos_id,
        "eos_token_id": tokenizer.eos_id,
        "pad_token_id": tokenizer.pad_id,
        "freeze_mm_mlp_adapter": True,
        "hidden_act": "silu",
        "hidden_size": spec.hidden_size,
        "image_aspect_ratio": "square",
        "image_grid_pinpoints": None,
        "initializer_range": 0.02,
        "intermediate_size": spec.intermediate_size,
        "mask_threshold": 0.0,
        "max_hole_area": 0.0,
        "max_position_embeddings": 2048,
        "max_sprinkle_area": 0.0,
        "mm_hidden_size": spec.clip_hidden_size,
        "mm_use_im_patch_token": False,
        "mm_use_im_start_end": True,
        "mm_vision_select_feature": "patch",
        "mm_vision_select_layer": -2,
        "mm_vision_tower": vision_tower,
        "model_type": "llava",
        "num_attention_heads": spec.num_attention_heads,
        "num_hidden_layers": spec.num_hidden_layers,
        "num_key_value_heads": spec.num_attention_heads,
        "out_dim": out_dim,
        "pretrain_mm_mlp_adapter": None,
        "pretraining_tp": 1,
        "rms_norm_eps": 1e-06,
        "rope_scaling": None,
        "tie_word_embeddings": False,
        "torch_dtype": "bfloat16",
        "train_mask_decoder": True,
        "transformers_version": "4.31.0",
        "tune_mm_mlp_adapter": False,
        "use_cache": False,
        "use_mm_proj": True,
        "vision_tower": vision_tower,
        "vocab_size": tokenizer.vocab_size,
    }


def _write_shards(folder: Path, state: dict, weight_format: str, num_shards: int) -> None:
    names = list(state)
    per_shard = -(-len(names) // num_shards)
    chunks = [names[i : i + per_shard] for i in range(0, len(names), per_shard)]
    stem, suffix = ("pytorch_model", "bin") if weight_format == "bin" else ("model", "safetensors")
    weight_map = {}
    for index, chunk in enumerate(chunks, start=1):
        filename = (
            f"{stem}-{index:05d}-of-{len(chunks):05d}.{suffix}" if len(chunks) > 1 else f"{stem}.{suffix}"
        )
        shard = {name: state[name] for name in chunk}
        if weight_format == "bin":
            torch.save(shard, folder / filename)
        else:
            save_file(shard, str(folder / filename), metadata={"format": "pt"})
        weight_map.update(dict.fromkeys(chunk, filename))
    if len(chunks) > 1:
        total = sum(t.numel() * t.element_size() for t in state.values())
        index = {"metadata": {"total_size": total}, "weight_map": weight_map}
        (folder / f"{stem}.{suffix}.index.json").write_text(json.dumps(index, indent=2), encoding="utf-8")
