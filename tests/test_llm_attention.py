"""The LLaMA's attention per schedule: eager (the official formula), or eager a chunk of heads at a time.

The chunked form is the `fast` schedule's on a CPU; it must give eager's bits, in every dtype, with a
cached prefix, batched prompts, grouped key/value heads and chunks that do not divide the heads.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn
from transformers import DynamicCache, LlamaConfig, LlamaForCausalLM

from glus_cli.model import mllm
from glus_cli.model.glus import GlusModel
from glus_cli.model.mllm import LLAMA_EAGER_IN_CHUNKS, SegLanguageModel, llm_attention_for
from glus_cli.protocol import SegmentationOptions
from tests.fixtures import run, synthetic_video

pytest_plugins = ["tests.fixtures"]

HEADS = 8
PREFIX, SUFFIX, BATCH = 7, 9, 2
SCORES_PER_HEAD = BATCH * SUFFIX * (PREFIX + SUFFIX)
"""Scores of one head in the batched suffix forward: the unit of `CHUNK_SCORES`."""


def _language(dtype: torch.dtype, kv_heads: int) -> SegLanguageModel:
    torch.manual_seed(0)
    config = LlamaConfig(
        hidden_size=64,
        intermediate_size=128,
        num_attention_heads=HEADS,
        num_key_value_heads=kv_heads,
        num_hidden_layers=2,
        vocab_size=40,
    )
    config._attn_implementation = "eager"
    llm = LlamaForCausalLM(config).to(dtype).eval()
    head = nn.ModuleList([nn.Sequential(nn.Linear(64, 16))]).to(dtype)
    return SegLanguageModel(llm, head, seg_token_id=39)


def _suffix_hidden(language: SegLanguageModel, attention: str) -> torch.Tensor:
    """(BATCH, SUFFIX, hidden): a prefix cached by `attention`, then a batch of two suffixes on top of it."""
    generator = torch.Generator().manual_seed(1)
    dtype = language.llm.dtype
    prefix = torch.randn(1, PREFIX, 64, generator=generator).to(dtype)
    suffixes = torch.randn(BATCH, SUFFIX, 64, generator=generator).to(dtype)
    cache = DynamicCache()
    language(prefix, past_key_values=cache, attention=attention)
    batched = DynamicCache(
        ddp_cache_data=[
            (layer.keys.expand(BATCH, -1, -1, -1), layer.values.expand(BATCH, -1, -1, -1))
            for layer in cache.layers
        ]
    )
    return language(suffixes, past_key_values=batched, attention=attention)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("kv_heads", [HEADS, 2])
@pytest.mark.parametrize("heads_per_chunk", [1, 3, HEADS])
def test_chunked_eager_attention_gives_eager_bits(
    monkeypatch: pytest.MonkeyPatch, dtype: torch.dtype, kv_heads: int, heads_per_chunk: int
) -> None:
    language = _language(dtype, kv_heads)
    eager = _suffix_hidden(language, "eager")
    monkeypatch.setattr(mllm, "CHUNK_SCORES", heads_per_chunk * SCORES_PER_HEAD)
    chunked = _suffix_hidden(language, LLAMA_EAGER_IN_CHUNKS)
    assert torch.equal(chunked, eager)
    assert eager.abs().sum() > 0 and not torch.equal(eager[0], eager[1])  # real, distinct rows
    assert language.llm.config._attn_implementation == "eager"  # restored after each forward


def test_the_attention_setting_is_restored_when_a_forward_fails() -> None:
    language = _language(torch.float32, HEADS)
    with pytest.raises(RuntimeError):
        language(torch.zeros(1, 3, 65), attention=LLAMA_EAGER_IN_CHUNKS)  # wrong width
    assert language.llm.config._attn_implementation == "eager"


def test_each_kernel_choice_has_its_llm_attention() -> None:
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert llm_attention_for("official", cpu) == llm_attention_for("official", cuda) == "eager"
    assert llm_attention_for("fastest", cpu) == LLAMA_EAGER_IN_CHUNKS
    assert llm_attention_for("fastest", cuda) == "eager"


@pytest.mark.parametrize(
    ("schedule", "attention"),
    [("fast", LLAMA_EAGER_IN_CHUNKS), ("fast-exact", "eager"), ("reference", "eager")],
)
def test_each_schedule_runs_its_llm_attention(
    tiny_model: GlusModel, monkeypatch: pytest.MonkeyPatch, schedule: str, attention: str
) -> None:
    seen: set[str] = set()
    original = SegLanguageModel.forward

    def spy(self: SegLanguageModel, *args: object, **kwargs: object) -> torch.Tensor:
        seen.add(str(kwargs.get("attention", "eager")))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(SegLanguageModel, "forward", spy)
    run(
        tiny_model,
        synthetic_video(2),
        options=SegmentationOptions(num_context_frames=1, num_query_frames=1, schedule=schedule),
    )
    assert seen == {attention}
