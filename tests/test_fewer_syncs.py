"""The LLM bookkeeping that spares GPU waits: batched `[SEG]` decisions, rotary lengths known on the host."""

from __future__ import annotations

import torch
from transformers import DynamicCache

from glus_cli.model.glus import GlusModel
from glus_cli.model.mllm import RotaryTable

pytest_plugins = ["tests.fixtures"]


def test_decide_last_rows_runs_lm_head_once_and_decides_as_row_by_row(tiny_model: GlusModel) -> None:
    language = tiny_model.language
    hidden_size = language.llm.config.hidden_size
    rows = torch.randn(3, 1, hidden_size, generator=torch.Generator().manual_seed(0))
    rows[:, :, 0] = torch.tensor([5.0, -5.0, 5.0])[:, None]  # the tiny model's [SEG] channel: yes, no, yes
    calls: list[tuple[int, ...]] = []
    hook = language.llm.lm_head.register_forward_hook(lambda _m, args, _o: calls.append(tuple(args[0].shape)))
    try:
        batched = language.decide_last_rows(rows)
        assert calls == [(3, 1, hidden_size)]
        one_by_one = [language.decide(rows[i : i + 1], full_sequence=False) for i in range(3)]
    finally:
        hook.remove()
    assert [d.is_seg for d in batched] == [True, False, True]
    for mine, theirs in zip(batched, one_by_one, strict=True):
        assert (mine.token_id, mine.is_seg) == (theirs.token_id, theirs.is_seg)
        if mine.is_seg:
            assert torch.equal(mine.embedding, theirs.embedding)
        else:
            assert mine.embedding is None


def test_rotary_table_grows_with_the_same_rows() -> None:
    table = RotaryTable(head_dim=16, theta=10000.0, max_positions=8)
    cos, sin = table.cos_table.clone(), table.sin_table.clone()
    table.ensure_positions(5)  # long enough already: unchanged
    assert table.cos_table.shape[0] == 8
    table.ensure_positions(20)
    fresh = RotaryTable(head_dim=16, theta=10000.0, max_positions=20)
    assert torch.equal(table.cos_table[:8], cos) and torch.equal(table.sin_table[:8], sin)
    assert torch.equal(table.cos_table, fresh.cos_table) and torch.equal(table.sin_table, fresh.sin_table)


def test_the_llm_sizes_the_rotary_table_from_the_cache_and_input_lengths(tiny_model: GlusModel) -> None:
    language = tiny_model.language
    llama = language.llm.model
    full_table = llama.rotary_emb
    embeds = torch.randn(1, 12, language.llm.config.hidden_size, generator=torch.Generator().manual_seed(1))
    expected = language(embeds)
    short = RotaryTable(full_table.head_dim, full_table.theta, max_positions=4)
    # Swapped by hand and put back: the session's shared model must keep its own table.
    llama.rotary_emb = short
    try:
        cache = DynamicCache()
        language(embeds[:, :5], past_key_values=cache)
        assert short.cos_table.shape[0] == 5
        rest = language(embeds[:, 5:], past_key_values=cache)
        assert short.cos_table.shape[0] == 12  # 5 cached + 7 new positions, known without reading the GPU
        assert torch.equal(language(embeds), expected)
    finally:
        llama.rotary_emb = full_table
    assert torch.allclose(rest, expected[:, 5:], atol=1e-5)
