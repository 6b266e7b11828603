"""The multimodal LLM half of GLUS (LISA / LLaVA lineage): CLIP -> pool -> projector -> LLaMA -> `[SEG]`.

Each image becomes 64 tokens: the CLIP ViT's penultimate-layer patch features (256 × C_clip) averaged in
groups of 4 consecutive raster tokens, then linearly projected to the LLaMA width. Those 64 rows replace
the image's `<image>` placeholder in the embedded prompt. One LLaMA prefill over the prompt gives the
next-token logits (is it `[SEG]`?) and the last position's final hidden state, which `text_hidden_fcs`
projects into the prompt embedding for SAM2's mask decoder.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AttentionInterface, Cache, CLIPVisionModel, LlamaForCausalLM
from transformers.masking_utils import AttentionMaskInterface, eager_mask
from transformers.models.llama.modeling_llama import repeat_kv

from glus_cli.model.attention import AttentionKernels
from glus_cli.model.config import IMAGE_TOKEN_POOL
from glus_cli.model.tokenizer import IMAGE_TOKEN_INDEX
from glus_cli.transfers import to_device

CLIP_ATTENTION = "glus_clip_eager"


def _clip_eager_attention(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float,
    dropout: float = 0.0,
    **kwargs: object,
) -> tuple[torch.Tensor, torch.Tensor]:
    """CLIP attention as transformers 4.31 computed it: the softmax in the model dtype.

    transformers 5's eager CLIP attention takes the softmax in fp32; in bf16 that changes output bits.
    In fp32 the two are identical. Registered under `CLIP_ATTENTION` in transformers' AttentionInterface.
    """
    weights = torch.matmul(query, key.transpose(-1, -2)) * scaling
    if attention_mask is not None:
        weights = weights + attention_mask
    weights = F.softmax(weights, dim=-1)
    weights = F.dropout(weights, p=dropout, training=module.training)
    return torch.matmul(weights, value).transpose(1, 2).contiguous(), weights


AttentionInterface.register(CLIP_ATTENTION, _clip_eager_attention)

LLAMA_EAGER_IN_CHUNKS = "glus_eager_in_head_chunks"
"""The LLaMA's eager attention a chunk of heads at a time (`_eager_attention_in_head_chunks`)."""
LlmAttention = Literal["eager", "glus_eager_in_head_chunks"]
"""transformers' name of the LLaMA attention implementation a forward runs."""
CHUNK_SCORES = 2**20
"""Attention scores per chunk of heads at most (4 MiB in fp32): a chunk's scores stay in the core's cache."""


def _eager_attention_in_head_chunks(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float,
    **kwargs: object,
) -> tuple[torch.Tensor, None]:
    """transformers' eager LLaMA attention (`eager_attention_forward`), a chunk of heads at a time.

    Eager attention passes the whole (B, heads, L, K) score matrix through five operations (product, scale,
    mask, fp32 softmax, cast back), each a round trip through memory: 9.3M scores per layer for the
    `fast` schedule's 406-position suffix over a 310-position cached prefix at LLaMA-7B's 32 heads. Heads
    are independent, so the same operations over a few heads at a time give the same bits, and on a CPU
    the chunk's scores stay in the core's cache: a LLaMA-7B layer took 142 ms against 173 ms in bf16 on a
    2-core AMX CPU (`benchmarks/bench_kernels.py`). Inference only (no dropout); the weights are not
    returned (nothing here asks for them).

    Args:
        module: the calling `LlamaAttention` (transformers' interface; not read).
        query: (B, heads, L, head_dim).
        key: (B, kv_heads, K, head_dim).
        value: (B, kv_heads, K, head_dim).
        attention_mask: eager's additive mask (B, 1, L, K) in the model dtype, or None.
        scaling: the softmax scale, 1 / sqrt(head_dim).
        **kwargs: the rest of transformers' interface (dropout, position ids; not read).

    Returns:
        (B, L, heads, head_dim) attention output, and None.
    """
    groups = query.shape[1] // key.shape[1]
    keys = repeat_kv(key, groups).transpose(2, 3)  # (B, heads, head_dim, K)
    values = repeat_kv(value, groups)
    batch, heads, length, _ = query.shape
    out = query.new_empty((batch, length, heads, values.shape[-1]))
    step = max(1, CHUNK_SCORES // (batch * length * keys.shape[-1]))
    for start in range(0, heads, step):
        chunk = slice(start, start + step)
        weights = torch.matmul(query[:, chunk], keys[:, chunk]) * scaling
        if attention_mask is not None:
            weights = weights + attention_mask
        weights = F.softmax(weights, dim=-1, dtype=torch.float32).to(query.dtype)
        out[:, :, chunk] = torch.matmul(weights, values[:, chunk]).transpose(1, 2)
    return out, None


AttentionInterface.register(LLAMA_EAGER_IN_CHUNKS, _eager_attention_in_head_chunks)
AttentionMaskInterface.register(LLAMA_EAGER_IN_CHUNKS, eager_mask)


def llm_attention_for(kernels: AttentionKernels, device: torch.device) -> LlmAttention:
    """The LLaMA attention to run with SAM2's attention `kernels` (`glus_cli.model.attention`).

    `official` runs transformers' eager attention, the official formula. The faster choices run it a chunk
    of heads at a time on a CPU (the same bits, from the cache); a GPU keeps eager, whose passes over the
    scores are not its bottleneck.
    """
    return LLAMA_EAGER_IN_CHUNKS if kernels != "official" and device.type == "cpu" else "eager"


class RotaryTable(nn.Module):
    """LLaMA rotary cos/sin looked up in a table built in fp32 on the CPU, as transformers 4.31 did.

    transformers 5 computes cos/sin on the fly from an `inv_freq` buffer that `.to(bfloat16)` also casts,
    which changes bf16 outputs; 4.31 built the (positions × head_dim) table once in fp32 and kept it in
    the model dtype. Same interface as `LlamaRotaryEmbedding.forward`.

    Args:
        head_dim: attention head width.
        theta: RoPE base.
        max_positions: initial table length; longer prompts extend it with the same fp32 recipe.
    """

    def __init__(self, head_dim: int, theta: float, max_positions: int) -> None:
        super().__init__()
        self.head_dim = head_dim
        self.theta = theta
        cos, sin = self._table(max_positions)
        self.register_buffer("cos_table", cos, persistent=False)
        self.register_buffer("sin_table", sin, persistent=False)

    def _table(self, length: int) -> tuple[torch.Tensor, torch.Tensor]:
        inv_freq = 1.0 / (self.theta ** (torch.arange(0, self.head_dim, 2).float() / self.head_dim))
        freqs = torch.outer(torch.arange(length, dtype=torch.float32), inv_freq)
        angles = torch.cat((freqs, freqs), dim=-1)  # (length, head_dim)
        return angles.cos(), angles.sin()

    def ensure_positions(self, length: int) -> None:
        """Extend the table to at least `length` positions (rows already there keep their bits).

        Callers give the length from what the host knows (cache length + sequence length): reading it
        from the position ids, as `int(position_ids.max())`, would wait for the GPU at every forward.
        """
        if length > self.cos_table.shape[0]:
            cos, sin = self._table(length)
            self.cos_table = cos.to(self.cos_table)
            self.sin_table = sin.to(self.sin_table)

    @torch.no_grad()
    def forward(self, x: torch.Tensor, position_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """cos, sin of shape (batch, seq, head_dim) in `x`'s dtype; positions must be < the table length."""
        return self.cos_table[position_ids].to(x.dtype), self.sin_table[position_ids].to(x.dtype)


class VisionProjector(nn.Module):
    """CLIP vision tower + 4-token average pooling + `mm_projector`: images -> LLM-width tokens.

    Args:
        vision_tower: transformers' `CLIPVisionModel`.
        mm_projector: Linear(C_clip, hidden).
        select_layer: index into CLIP's hidden states (-2: output of the penultimate encoder layer).
    """

    def __init__(self, vision_tower: CLIPVisionModel, mm_projector: nn.Linear, select_layer: int) -> None:
        super().__init__()
        self.vision_tower = vision_tower
        self.mm_projector = mm_projector
        self.select_layer = select_layer

    @torch.inference_mode()
    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """(N, 3, 224, 224) CLIP-preprocessed images -> (N, 64, hidden) image tokens."""
        param = self.mm_projector.weight
        pixel_values = pixel_values.to(device=param.device, dtype=self.vision_tower.dtype)
        hidden = self.vision_tower(pixel_values, output_hidden_states=True).hidden_states[self.select_layer]
        patches = hidden[:, 1:]  # drop CLS: (N, 256, C_clip)
        pooled = F.avg_pool1d(patches.transpose(1, 2), IMAGE_TOKEN_POOL, IMAGE_TOKEN_POOL).transpose(1, 2)
        return self.mm_projector(pooled.to(param.dtype))  # (N, 64, hidden)


@dataclass
class SegDecision:
    """The LLM's answer for one query frame.

    Attributes:
        token_id: greedy next token after the answer prefix.
        is_seg: whether that token is `[SEG]`.
        embedding: (1, 1, out_dim) prompt embedding for SAM2 when `is_seg`, else None.
    """

    token_id: int
    is_seg: bool
    embedding: torch.Tensor | None


class SegLanguageModel(nn.Module):
    """LLaMA with image tokens spliced into the prompt, and the `[SEG]` head (`text_hidden_fcs`).

    Args:
        llm: transformers' `LlamaForCausalLM` holding the merged GLUS weights.
        text_hidden_fcs: ModuleList([Sequential(Linear(H, H), ReLU, Linear(H, out_dim), Dropout(0))]),
            the official module layout, so its parameter names match the checkpoint.
        seg_token_id: id of `[SEG]`.
    """

    def __init__(self, llm: LlamaForCausalLM, text_hidden_fcs: nn.ModuleList, seg_token_id: int) -> None:
        super().__init__()
        self.llm = llm
        self.text_hidden_fcs = text_hidden_fcs
        self.seg_token_id = seg_token_id

    def embed_prompt(self, input_ids: list[int], image_tokens: torch.Tensor) -> torch.Tensor:
        """Embed prompt ids, replacing the k-th `IMAGE_TOKEN_INDEX` with the k-th image's 64 tokens.

        Args:
            input_ids: prompt ids with one `IMAGE_TOKEN_INDEX` per image.
            image_tokens: (N_images, 64, hidden), in prompt order.

        Returns:
            (1, L_expanded, hidden) with L_expanded = len(input_ids) + 63 * N_images.
        """
        embed_tokens = self.llm.get_input_embeddings()
        device = embed_tokens.weight.device
        ids = to_device(torch.tensor(input_ids), device)
        image_slots = [slot for slot, token in enumerate(input_ids) if token == IMAGE_TOKEN_INDEX]
        if len(image_slots) != image_tokens.shape[0]:
            raise ValueError(f"prompt has {len(image_slots)} image slots for {image_tokens.shape[0]} images")
        pieces, start = [], 0
        for image_index, slot in enumerate(image_slots):
            pieces.append(embed_tokens(ids[start:slot]))
            pieces.append(image_tokens[image_index].to(device=device, dtype=embed_tokens.weight.dtype))
            start = slot + 1
        pieces.append(embed_tokens(ids[start:]))
        return torch.cat(pieces)[None]

    @torch.inference_mode()
    def forward(
        self,
        inputs_embeds: torch.Tensor,
        past_key_values: Cache | None = None,
        attention: LlmAttention = "eager",
    ) -> torch.Tensor:
        """Final-norm hidden states (B, L, hidden) of a causal prefill; positions continue after the cache.

        `attention` is transformers' attention implementation for this call (`llm_attention_for`). Every
        layer reads it from the one config the model shares, so it is set for the call and restored after.
        """
        cached = 0 if past_key_values is None else past_key_values.get_seq_length()
        rotary = self.llm.model.rotary_emb
        if isinstance(rotary, RotaryTable):
            rotary.ensure_positions(cached + inputs_embeds.shape[1])
        config = self.llm.config
        chosen, config._attn_implementation = config._attn_implementation, attention
        try:
            output = self.llm.model(
                inputs_embeds=inputs_embeds,
                past_key_values=past_key_values,
                use_cache=past_key_values is not None,
            )
        finally:
            config._attn_implementation = chosen
        return output.last_hidden_state

    @torch.inference_mode()
    def decide(self, hidden: torch.Tensor, full_sequence: bool = True) -> SegDecision:
        """Greedy next token at the last position and, if it is `[SEG]`, the SAM2 prompt embedding.

        `full_sequence=True` runs `lm_head` and `text_hidden_fcs` over every position as the official
        code does (only the last row is used); False runs them on the last row only (same math, fewer
        FLOPs; low bits may differ on some kernels).
        """
        if not full_sequence:
            return self.decide_last_rows(hidden[:, -1:])[0]
        token_id = int(self.llm.lm_head(hidden)[0, -1].argmax())
        return self._decision(token_id, hidden)

    @torch.inference_mode()
    def decide_last_rows(self, rows: torch.Tensor) -> list[SegDecision]:
        """`decide(..., full_sequence=False)` for B prompts at once, from their last rows (B, 1, hidden).

        One `lm_head` over the B rows and one wait for the GPU (the `[SEG]` argmaxes, which decide whether
        SAM2 runs, as in the official code); the `[SEG]` head then runs on each `[SEG]` row alone, as
        `decide` runs it, so a prompt's embedding does not depend on the rows batched with it.
        """
        token_ids = self.llm.lm_head(rows)[:, -1].argmax(dim=-1).tolist()  # (B,) -> B ints
        return [self._decision(token_id, rows[row : row + 1]) for row, token_id in enumerate(token_ids)]

    def _decision(self, token_id: int, rows: torch.Tensor) -> SegDecision:
        """The decision for greedy token `token_id`, with `rows` (1, L, hidden) ending at the answer."""
        if token_id != self.seg_token_id:
            return SegDecision(token_id=token_id, is_seg=False, embedding=None)
        embedding = self.text_hidden_fcs[0](rows)[:, -1:]  # (1, 1, out_dim)
        return SegDecision(token_id=token_id, is_seg=True, embedding=embedding)
