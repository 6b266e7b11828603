"""The llava_v1 conversation for each query frame, as the official `inference_iter.py` builds it."""

from __future__ import annotations

import pytest
import sentencepiece as spm

from glus_cli.errors import InputError
from glus_cli.model.prompt import (
    ANSWER_PREFIX,
    CONTEXT_INSTRUCTION,
    SEG_ANSWER,
    SYSTEM_MESSAGE,
    build_prompt,
    build_prompt_ids,
    context_block,
    normalize_expression,
    query_window,
)
from glus_cli.model.tokenizer import IMAGE_TOKEN_INDEX, GlusTokenizer

PANDA = normalize_expression("The panda that has stayed in place with little movement")
IMG = "<im_start><image><im_end>"
QUESTION = (
    IMG + "\nCan you segment the the panda that has stayed in place with little movement in this frame?"
)

# The full prompt of the first query frame, as printed in the reference (demo expression).
FRAME_1_PROMPT = (
    "A chat between a curious human and an artificial intelligence assistant. The assistant gives helpful, "
    "detailed, and polite answers to the human's questions. USER: <im_start><image><im_end><im_start><image>"
    "<im_end><im_start><image><im_end><im_start><image><im_end>\nPlease finished the following tasks on the "
    "context frames above.\n<im_start><image><im_end>\nCan you segment the the panda that has stayed in "
    "place with little movement in this frame? ASSISTANT: Sure, the segmentation result is "
)

pytest_plugins = ["tests.fixtures"]


# --- expression ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("The dog.", "the dog"),
        ("a..", "a."),
        ("A Red CAR", "a red car"),
        (" the dog . ", " the dog . "),  # only a final "." is removed; no strip
        ("Café.", "café"),
        ("[SEG]", "[seg]"),  # lower-cased, "[seg]" is plain text to the tokenizer
    ],
)
def test_normalize_expression(raw: str, expected: str) -> None:
    assert normalize_expression(raw) == expected


@pytest.mark.parametrize("raw", ["", ".", "   ", " .", "\n"])
def test_empty_expression_is_rejected(raw: str) -> None:
    with pytest.raises(InputError, match="no words"):
        normalize_expression(raw)


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        ("the <image> dog", "split on it"),
        ("the <IMAGE> dog", "split on it"),  # lower-casing would create the marker
        ("<im_start>dog", "frame boundary"),
        ("dog<im_end>", "frame boundary"),
        ("<im_patch>", "reserved image token"),
        ("the dog </s> now", "end-of-turn"),
        ("<s>dog", "beginning-of-sequence"),
    ],
)
def test_reserved_text_is_rejected(raw: str, why: str) -> None:
    with pytest.raises(InputError, match=why):
        normalize_expression(raw)
    with pytest.raises(InputError):
        build_prompt(raw.lower(), 0)


# --- window and prompt text ------------------------------------------------------------------------------


def test_query_window() -> None:
    assert [list(query_window(step)) for step in range(7)] == [
        [0], [0, 1], [0, 1, 2], [0, 1, 2, 3], [1, 2, 3, 4], [2, 3, 4, 5], [3, 4, 5, 6],
    ]  # fmt: skip
    assert list(query_window(5, num_query_frames=1)) == [5]
    with pytest.raises(ValueError, match="step"):
        query_window(-1)


def test_first_frame_prompt_is_the_official_text() -> None:
    assert build_prompt(PANDA, 0) == FRAME_1_PROMPT


def test_second_frame_prompt() -> None:
    prompt = build_prompt(PANDA, 1)
    first_turn = FRAME_1_PROMPT.removesuffix(ANSWER_PREFIX)
    assert prompt.startswith(first_turn + "Sure, the segmentation result is [SEG].</s>USER: ")
    assert prompt.endswith(f"</s>USER: {QUESTION} ASSISTANT: Sure, the segmentation result is ")
    assert prompt.count(CONTEXT_INSTRUCTION) == 1
    assert prompt.count("<image>") == 6
    assert prompt.count("[SEG]") == 1


@pytest.mark.parametrize("step", range(7))
def test_prompt_structure_per_frame(step: int) -> None:
    prompt = build_prompt(PANDA, step)
    turns = min(step + 1, 4)
    assert prompt.startswith(SYSTEM_MESSAGE + " USER: " + context_block())
    assert prompt.count("USER: ") == turns
    assert prompt.count(QUESTION) == turns
    assert prompt.count(context_block()) == 1
    assert prompt.count(SEG_ANSWER + "</s>") == turns - 1
    assert prompt.count("<image>") == 4 + turns
    assert prompt.endswith(" ASSISTANT: " + ANSWER_PREFIX)
    assert not prompt.endswith("</s>")


def test_window_slides_with_the_context_block_in_the_first_turn() -> None:
    prompts = [build_prompt(PANDA, step) for step in range(7)]
    assert prompts[3] == prompts[4] == prompts[5] == prompts[6]
    turns = prompts[4].split("</s>")
    assert len(turns) == 4
    assert context_block() in turns[0]
    assert all(context_block() not in turn for turn in turns[1:])


def test_two_context_frames() -> None:
    prompt = build_prompt(PANDA, 1, num_context_frames=2)
    assert prompt.count("<image>") == 2 + 2
    assert prompt == build_prompt(PANDA, 1).replace(IMG * 4 + "\n", IMG * 2 + "\n")
    assert context_block(2) == IMG * 2 + "\n" + CONTEXT_INSTRUCTION + "\n"


# --- token ids -------------------------------------------------------------------------------------------


def test_ids_for_frames_1_to_7(tok: GlusTokenizer, sp: spm.SentencePieceProcessor) -> None:
    frames = [build_prompt_ids(tok, "the dog", step) for step in range(7)]
    assert frames[3] == frames[4] == frames[5] == frames[6]
    # Text before the first query image is the same for every frame: BOS … first query <im_start>.
    prefix = [tok.bos_id, *sp.encode(SYSTEM_MESSAGE + " USER:")]
    prefix += [tok.im_start_id, IMAGE_TOKEN_INDEX, tok.im_end_id] * 4 + sp.encode(CONTEXT_INSTRUCTION)
    prefix += [tok.im_start_id]
    assert all(ids[: len(prefix)] == prefix for ids in frames)
    # A finished turn ends `is [SEG] ▁. </s>` and the next one starts `▁USER: <im_start> -200 <im_end> ▁Can`.
    boundary = [tok.seg_token_id, *sp.encode("."), tok.eos_id, *sp.encode("USER:")]
    boundary += [tok.im_start_id, IMAGE_TOKEN_INDEX, tok.im_end_id, *sp.encode("Can")]
    for step, ids in enumerate(frames):
        turns = min(step + 1, 4)
        assert sum(ids[i : i + len(boundary)] == boundary for i in range(len(ids))) == turns - 1
        assert ids[-1] == sp.piece_to_id("▁")
        assert ids.count(tok.seg_token_id) == turns - 1
        assert ids.count(tok.eos_id) == turns - 1


def test_failed_frame_history_gives_the_same_ids(tok: GlusTokenizer) -> None:
    # The official failure path writes "[SEG] ." instead of "[SEG].": same ids, so prompts need no history.
    prompt = build_prompt("the dog", 2)
    failed = prompt.replace("[SEG].</s>", "[SEG] .</s>", 1)
    assert failed != prompt
    assert tok.encode_prompt(failed) == tok.encode_prompt(prompt)


@pytest.mark.parametrize("num_context_frames", [4, 2])
@pytest.mark.parametrize("expression", ["the dog", "a red car moving to the left", "2 cats", "x"])
def test_length_formula(
    tok: GlusTokenizer, sp: spm.SentencePieceProcessor, expression: str, num_context_frames: int
) -> None:
    """L_ids(k) = head + 3·N_C + instr + k·(3 + ask + e + tail) + (k−1)·(closing + opening) + 1.

    With the real LLaMA vocabulary (head 34, instr 11, ask 4, tail 16, closing 3, opening 3) this is the
    reference's 81 + e + (k−1)(29 + e) for N_C = 4; k = min(step + 1, N_Q) turns.
    """
    n = len
    head = 1 + n(sp.encode(SYSTEM_MESSAGE + " USER:"))
    instruction = n(sp.encode(CONTEXT_INSTRUCTION))
    ask = n(sp.encode("Can you segment the"))
    e = n(sp.encode(expression))
    tail = n(sp.encode("in this frame? ASSISTANT: Sure, the segmentation result is"))
    closing = 1 + n(sp.encode(".")) + 1  # [SEG] ▁. </s>
    opening = n(sp.encode("USER:"))
    for step in range(7):
        k = min(step + 1, 4)
        expected = head + 3 * num_context_frames + instruction + k * (3 + ask + e + tail)
        expected += (k - 1) * (closing + opening) + 1
        assert len(build_prompt_ids(tok, expression, step, num_context_frames)) == expected
