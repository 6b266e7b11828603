"""The SAM2 half of GLUS: per-frame image features, memory conditioning, mask decoding, memory encoding.

GLUS drives SAM2's modules directly instead of SAM2's video predictor: the mask decoder is prompted by a
single sparse token (the projected `[SEG]` hidden state), and the lowest-resolution image features are
conditioned on GLUS's own memory bank (see `memory_bank.py`). Everything here follows the official
`GLUS.get_visual_embs` / `GLUS.evaluate` on top of the unmodified `sam2` package.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from glus_cli.errors import CheckpointError
from glus_cli.model.attention import AttentionKernels, run_attention
from glus_cli.model.memory_bank import MemoryEntry, MemoryReadout

# ImageNet statistics of SAM2's `SAM2Transforms`.
SAM2_PIXEL_MEAN = (0.485, 0.456, 0.406)
SAM2_PIXEL_STD = (0.229, 0.224, 0.225)

# `build_sam2(apply_postprocessing=True)`: with a single-mask request, fall back to the best of the
# multimask outputs when the single mask is unstable. The official build turns this on.
_POSTPROCESSING = {
    "dynamic_multimask_via_stability": True,
    "dynamic_multimask_stability_delta": 0.05,
    "dynamic_multimask_stability_thresh": 0.98,
}


def build_sam2_model(config: str | Path, device: torch.device | str = "cpu") -> nn.Module:
    """Build an untrained `SAM2Base` (eval mode) from a packaged config name or a yaml file, on `device`.

    Packaged names (`sam2_hiera_l.yaml`, `configs/sam2.1/sam2.1_hiera_l.yaml`, ...) go through
    `sam2.build_sam.build_sam2`. A yaml path is composed here with OmegaConf because `build_sam2` only
    resolves names inside sam2's own Hydra config module; the same post-processing switches are applied.
    Every table ends up on `device` only (`place_sam2_tables`).
    """
    from hydra.errors import MissingConfigException
    from hydra.utils import instantiate
    from omegaconf import OmegaConf
    from sam2.build_sam import build_sam2

    config = str(config)
    path = Path(config)
    with _cuda_hidden():
        if path.suffix in (".yaml", ".yml") and path.is_file():
            cfg = OmegaConf.load(path)
            OmegaConf.update(cfg, "model.sam_mask_decoder_extra_args", _POSTPROCESSING, merge=True)
            OmegaConf.resolve(cfg)
            model = instantiate(cfg.model, _recursive_=True).eval()
        else:
            try:
                model = build_sam2(config, ckpt_path=None, device="cpu", mode="eval")
            except MissingConfigException as error:
                raise CheckpointError(
                    f"unknown SAM2 config {config!r}: give a config packaged with sam2 (e.g. "
                    "sam2_hiera_l.yaml) or the path of a yaml file"
                ) from error
    return place_sam2_tables(model.to(device), torch.device(device))


@contextlib.contextmanager
def _cuda_hidden() -> Iterator[None]:
    """Hide CUDA while sam2's constructors run.

    sam2 1.1.0's `RoPEAttention.__init__` puts its `freqs_cis` table on "cuda" and `PositionEmbeddingSine`
    warms its cache on "cuda" whenever CUDA exists: that opens a context on GPU 0 (about 0.5 GB) even
    for `--device cpu` or `--device cuda:3`. sam2 offers no switch, so its constructors see no CUDA and
    the model is moved to the requested device afterwards (`place_sam2_tables`).
    """
    with mock.patch.object(torch.cuda, "is_available", return_value=False):
        yield


def place_sam2_tables(sam2: nn.Module, device: torch.device) -> nn.Module:
    """Move the tables sam2 keeps as plain attributes (not buffers, so `.to()` skips them) to `device`.

    These are `RoPEAttention.freqs_cis` (complex, (tokens, head_dim / 2)) and `PositionEmbeddingSine`'s
    cache of sine encodings.
    """
    for module in sam2.modules():
        table = getattr(module, "freqs_cis", None)
        if isinstance(table, torch.Tensor):
            module.freqs_cis = table.to(device)
        cache = getattr(module, "cache", None)
        if isinstance(cache, dict):
            for key, value in cache.items():
                if isinstance(value, torch.Tensor):
                    cache[key] = value.to(device)
    return sam2


@dataclass
class FrameFeatures:
    """SAM2 backbone features of one frame, flattened as `_prepare_backbone_features` returns them.

    Attributes:
        vision_feats: three levels (HW, 1, C): 256² × C/8 and 128² × C/4 (already through the decoder's
            `conv_s0`/`conv_s1`) and 64² × C, in the model dtype.
        vision_pos: the sine position encodings of the three levels, (HW, 1, C), model dtype.
        feat_sizes: [(256, 256), (128, 128), (64, 64)] for a 1024-pixel SAM2.
    """

    vision_feats: list[torch.Tensor]
    vision_pos: list[torch.Tensor]
    feat_sizes: list[tuple[int, int]]


@dataclass
class DecodedMask:
    """Mask decoder output for one frame.

    Attributes:
        low_res_logits: (1, 1, 256, 256) mask logits (model dtype).
        iou: (1, 1) predicted IoU of the chosen mask.
        object_score: (1, 1) object-score logit.
    """

    low_res_logits: torch.Tensor
    iou: torch.Tensor
    object_score: torch.Tensor


class GlusSegmenter(nn.Module):
    """SAM2 as GLUS uses it, one frame at a time (batch size 1).

    Args:
        sam2: a `SAM2Base` whose weights come from the GLUS checkpoint (`model.visual_model.*`).
    """

    def __init__(self, sam2: nn.Module) -> None:
        super().__init__()
        self.sam2 = sam2

    @property
    def image_size(self) -> int:
        """Side of SAM2's square input (1024)."""
        return int(self.sam2.image_size)

    @property
    def _param(self) -> torch.Tensor:
        return self.sam2.no_mem_embed

    def preprocess(self, frame: np.ndarray) -> torch.Tensor:
        """RGB uint8 (H, W, 3) -> normalised (1, 3, S, S) float32 on the CPU.

        As `SAM2Transforms` on the CPU: to [0, 1], bilinear resize to S × S (aspect ratio not kept,
        antialias on, as torchvision's tensor `Resize`), ImageNet mean/std. Kept in fp32 on the CPU like
        the official code; `encode_frame` casts to the model's device and dtype.
        """
        image = torch.from_numpy(np.ascontiguousarray(frame.transpose(2, 0, 1))).float().div(255)
        size = (self.image_size, self.image_size)
        image = F.interpolate(image[None], size=size, mode="bilinear", align_corners=False, antialias=True)
        mean = torch.tensor(SAM2_PIXEL_MEAN).view(1, 3, 1, 1)
        std = torch.tensor(SAM2_PIXEL_STD).view(1, 3, 1, 1)
        return (image - mean) / std

    @torch.inference_mode()
    def encode_frame(self, pixel_values: torch.Tensor) -> FrameFeatures:
        """Image encoder + FPN for one preprocessed frame (1, 3, S, S)."""
        param = self._param
        pixel_values = pixel_values.to(device=param.device, dtype=param.dtype)
        backbone_out = self.sam2.forward_image(pixel_values)
        _, feats, pos, sizes = self.sam2._prepare_backbone_features(backbone_out)
        # The FPN's top-down sum leaves the lowest level in fp32; GLUS casts every level to the model dtype.
        return FrameFeatures(
            vision_feats=[f.to(param.dtype) for f in feats],
            vision_pos=[p.to(param.dtype) for p in pos],
            feat_sizes=[tuple(s) for s in sizes],
        )

    @torch.inference_mode()
    def condition_on_memory(
        self, features: FrameFeatures, memory: MemoryReadout | None, kernels: AttentionKernels = "official"
    ) -> torch.Tensor:
        """The lowest-resolution features (HW, 1, C) conditioned on the memory bank.

        With no memory, SAM2's `no_mem_embed` is added; otherwise `memory_attention` runs over the read
        memories with no object-pointer tokens (GLUS uses none), on the attention `kernels` the schedule
        chose (`glus_cli.model.attention`).
        """
        current = features.vision_feats[-1]
        if memory is None:
            return current + self.sam2.no_mem_embed
        return run_attention(
            lambda: self.sam2.memory_attention(
                curr=[current],
                curr_pos=[features.vision_pos[-1]],
                memory=memory.memory,
                memory_pos=memory.memory_pos,
                num_obj_ptr_tokens=0,
            ),
            current.device,
            current.dtype,
            kernels,
        )

    def dense_positional_encoding(self) -> torch.Tensor:
        """`sam_prompt_encoder.get_dense_pe()` as GLUS computed it: (1, C, 64, 64), in the buffer's dtype.

        Upstream sam2 builds the coordinate grid in fp32, which fails against a bf16 Gaussian matrix; the
        GLUS copy builds it in the buffer's dtype. In fp32 the two are identical.
        """
        pe_layer = self.sam2.sam_prompt_encoder.pe_layer
        gaussian = pe_layer.positional_encoding_gaussian_matrix  # (2, C/2)
        h, w = self.sam2.sam_prompt_encoder.image_embedding_size
        grid = torch.ones((h, w), device=gaussian.device, dtype=gaussian.dtype)
        y = (grid.cumsum(dim=0) - 0.5) / h
        x = (grid.cumsum(dim=1) - 0.5) / w
        coords = 2 * torch.stack([x, y], dim=-1) - 1
        coords = 2 * math.pi * (coords @ gaussian)
        return torch.cat([coords.sin(), coords.cos()], dim=-1).permute(2, 0, 1).unsqueeze(0)

    @torch.inference_mode()
    def decode(
        self,
        features: FrameFeatures,
        conditioned: torch.Tensor,
        prompt_embedding: torch.Tensor,
        kernels: AttentionKernels = "official",
    ) -> DecodedMask:
        """Mask decoder prompted by the `[SEG]` embedding (1, 1, out_dim), on the conditioned features.

        Its attention runs on the `kernels` the schedule chose (`glus_cli.model.attention`).
        """
        sam2 = self.sam2
        dtype = conditioned.dtype
        (h0, w0), (h1, w1), (h2, w2) = features.feat_sizes
        image_embedding = conditioned.permute(1, 2, 0).reshape(1, -1, h2, w2)
        high_res = [
            features.vision_feats[0].permute(1, 2, 0).reshape(1, -1, h0, w0),
            features.vision_feats[1].permute(1, 2, 0).reshape(1, -1, h1, w1),
        ]
        sparse, dense = sam2.sam_prompt_encoder(points=None, boxes=None, masks=None)
        sparse = torch.cat([sparse, prompt_embedding.to(sparse.device)], dim=1).to(dtype)
        low_res, iou, _, object_score = run_attention(
            lambda: sam2.sam_mask_decoder(
                image_embeddings=image_embedding,
                image_pe=self.dense_positional_encoding(),
                sparse_prompt_embeddings=sparse,
                dense_prompt_embeddings=dense,
                multimask_output=False,
                repeat_image=False,
                high_res_features=high_res,
            ),
            conditioned.device,
            dtype,
            kernels,
        )
        return DecodedMask(low_res_logits=low_res, iou=iou, object_score=object_score)

    @torch.inference_mode()
    def encode_memory(
        self, features: FrameFeatures, conditioned: torch.Tensor, decoded: DecodedMask
    ) -> MemoryEntry:
        """The memory of this frame, from the memory-conditioned features (as GLUS; upstream uses raw ones).

        The logits are upsampled to S × S in fp32 and cast back, then go through SAM2's
        `_encode_new_memory` (sigmoid, scale, bias, memory encoder).
        """
        size = (self.image_size, self.image_size)
        high_res_logits = upsample_logits(decoded.low_res_logits, size).to(conditioned.dtype)
        maskmem_features, maskmem_pos_enc = self.sam2._encode_new_memory(
            current_vision_feats=[*features.vision_feats[:-1], conditioned],
            feat_sizes=features.feat_sizes,
            pred_masks_high_res=high_res_logits,
            object_score_logits=decoded.object_score,
            is_mask_from_pts=False,
        )
        return MemoryEntry(features=maskmem_features, pos_enc=maskmem_pos_enc[0])


def upsample_logits(low_res_logits: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear (align_corners=False) upsampling of (1, 1, h, w) logits to `size`, in fp32."""
    return F.interpolate(low_res_logits.float(), size=size, mode="bilinear", align_corners=False)
