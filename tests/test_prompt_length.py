"""Prompt lengths against the LLM's context, counted before any weight loads; load_glus's progress steps."""

from __future__ import annotations

import pytest
import torch

from glus_cli.errors import InputError
from glus_cli.model.glus import GlusModel, load_glus
from glus_cli.model.prompt import build_prompt_ids, normalize_expression
from glus_cli.model.prompt_length import (
    check_expressions_fit,
    check_prompt_lengths,
    image_positions,
    prompt_positions,
)
from glus_cli.protocol import SegmentationOptions
from glus_cli.testing.checkpoint import SyntheticCheckpoint

pytest_plugins = ["tests.fixtures"]


def test_image_positions_of_vit_l_14_at_224(tiny_checkpoint: SyntheticCheckpoint) -> None:
    assert image_positions(tiny_checkpoint.vision_tower) == 64  # 16 x 16 patches pooled by 4


@pytest.mark.parametrize(("num_context", "num_query"), [(4, 4), (1, 1), (2, 3)])
def test_prompt_positions_are_the_embedded_prompt_length(
    tiny_model: GlusModel, num_context: int, num_query: int
) -> None:
    """The count equals the length of the sequence the LLM really gets for the longest prompt."""
    options = SegmentationOptions(num_context_frames=num_context, num_query_frames=num_query)
    expression = "The dog that jumps first."
    ids = build_prompt_ids(
        tiny_model.tokenizer, normalize_expression(expression), num_query - 1, num_context, num_query
    )
    hidden = tiny_model.language.llm.config.hidden_size
    images = torch.zeros(num_context + num_query, 64, hidden)
    embedded = tiny_model.language.embed_prompt(ids, images)  # (1, positions, hidden)
    assert prompt_positions(tiny_model.tokenizer, expression, options, 64) == embedded.shape[1]


def test_the_expression_counts_once_per_window_turn(tiny_model: GlusModel) -> None:
    options = SegmentationOptions()
    short = prompt_positions(tiny_model.tokenizer, "the dog", options, 64)
    longer = prompt_positions(tiny_model.tokenizer, "the dog " + "and the cat " * 10, options, 64)
    extra = len(tiny_model.tokenizer.encode(" and the cat" * 10, add_bos=False))
    assert longer - short == pytest.approx(options.num_query_frames * extra, abs=options.num_query_frames)


def test_a_long_expression_is_refused_with_its_count_and_the_limit(tiny_model: GlusModel) -> None:
    options = SegmentationOptions()
    expression = "the dog " * 200
    length = prompt_positions(tiny_model.tokenizer, expression, options, 64)
    assert length > 2048
    with pytest.raises(InputError) as refused:
        check_prompt_lengths(
            tiny_model.tokenizer, ["the cat", expression], options, positions_per_image=64, max_positions=2048
        )
    message = str(refused.value)
    assert f"{length:,} tokens" in message and "2,048" in message and "\n" not in message
    check_prompt_lengths(
        tiny_model.tokenizer, ["the cat"], options, positions_per_image=64, max_positions=2048
    )


def test_check_expressions_fit_reads_the_checkpoint_folder(tiny_checkpoint: SyntheticCheckpoint) -> None:
    options = SegmentationOptions()
    check_expressions_fit(tiny_checkpoint.path, tiny_checkpoint.vision_tower, ["the red circle"], options)
    with pytest.raises(InputError, match="2,048"):
        check_expressions_fit(tiny_checkpoint.path, tiny_checkpoint.vision_tower, ["red " * 400], options)


def test_load_glus_reports_its_steps(tiny_checkpoint: SyntheticCheckpoint) -> None:
    """Two weight shards, then LLaMA and CLIP, then SAM2, then ready: `done` counts up to `total`."""
    steps: list[tuple[str, int, int]] = []
    load_glus(tiny_checkpoint.path, device="cpu", on_progress=lambda *step: steps.append(step))
    assert steps == [
        ("weights 1/2", 0, 4),
        ("weights 2/2", 1, 4),
        ("LLaMA and CLIP vision tower", 2, 4),
        ("SAM2", 3, 4),
        ("ready", 4, 4),
    ]
