"""The synthetic checkpoint builder: its LLM's `[SEG]` answer holds at every width, not only the tiny one.

The benchmark's GLUS-shaped checkpoint (LLaMA width 4096) relies on this: if the `[SEG]` channel drowned in
the residual stream there, SAM2 would never run and the benchmark would time the wrong work.
"""

from __future__ import annotations

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from glus_cli.model.prompt import build_prompt_ids
from glus_cli.model.tokenizer import IMAGE_TOKEN_INDEX, GlusTokenizer
from glus_cli.testing.checkpoint import SegBehaviour, _llm_state

pytest_plugins = ["tests.fixtures"]

EXPRESSIONS = ("the red ball", "a moving object on the left")


@pytest.mark.parametrize("seg", ["always", "never"])
@pytest.mark.parametrize("width", [64, 1024])
def test_greedy_answer_follows_the_seg_setting_at_every_width(
    tok: GlusTokenizer, seg: SegBehaviour, width: int
) -> None:
    config = LlamaConfig(
        vocab_size=tok.vocab_size,
        hidden_size=width,
        intermediate_size=width * 2,
        num_hidden_layers=2,
        num_attention_heads=width // 16,
        max_position_embeddings=2048,
    )
    llm = LlamaForCausalLM(config)
    # The state also holds the rotary `inv_freq` buffers transformers 4.31 saved, which v5 does not have.
    missing, _ = llm.load_state_dict(_llm_state(config, tok, seg, seed=0), strict=False)
    assert not missing
    llm.eval()
    for expression in EXPRESSIONS:
        for step in (0, 5):
            ids = [i for i in build_prompt_ids(tok, expression, step) if i != IMAGE_TOKEN_INDEX]
            with torch.inference_mode():
                logits = llm(torch.tensor([ids])).logits[0, -1]
            answers_seg = int(logits.argmax()) == tok.seg_token_id
            assert answers_seg == (seg == "always"), (width, expression, step)
