"""The conversation GLUS is asked for each query frame: the llava_v1 template of the official release.

For query frame ``t`` (its 0-based position in the query sequence) the prompt is a multi-turn chat:
the system text, then one user turn per frame of the *window* (the last ``min(t + 1, N_Q)`` query
frames), each asking to segment the expression in that frame. The first turn of the window also carries
the *context block*: the ``N_C`` context frames and an instruction about them. Every earlier turn is
answered ``Sure, the segmentation result is [SEG].``; the last turn's answer is left open at
``Sure, the segmentation result is `` (trailing space) so that the model's next token is ``[SEG]``.
Each frame appears as ``<im_start><image><im_end>``; the tokenizer turns every ``<image>`` into one
placeholder id that the language model replaces with the frame's image tokens. Images appear in the
order: the context frames, then the window's frames, oldest first.

Official source: ``inference_iter.py`` (messages, window and trimming), ``utils/utils.py`` (the
context and question strings), ``model/llava/conversation.py`` (``conv_llava_v1``, separator style TWO).
Two details kept on purpose because the model was trained on them: the typo "Please finished", and
"segment the {expression}" even when the expression starts with "the". The official prompt's context
block always has 4 images (``CONTEXT_FRAME_NUM = 4``, independent of its ``--context_frame_num``
option); here it has ``num_context_frames`` images, which with the default 4 is the official string.

Whether a frame's mask was produced or not, the history keeps ``[SEG].`` for that turn: the official
failure path writes ``[SEG] .``, which tokenizes to the same ids, so the prompt (and its ids) depends
only on the expression and the query position.
"""

from __future__ import annotations

from glus_cli.errors import InputError
from glus_cli.model.tokenizer import (
    IM_END_TOKEN,
    IM_PATCH_TOKEN,
    IM_START_TOKEN,
    IMAGE_PLACEHOLDER,
    SEG_TOKEN,
    GlusTokenizer,
)
from glus_cli.protocol import NUM_CONTEXT_FRAMES, NUM_QUERY_FRAMES

SYSTEM_MESSAGE = (
    "A chat between a curious human and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the human's questions."
)
USER_ROLE = "USER"
ASSISTANT_ROLE = "ASSISTANT"
TURN_SEPARATOR = " "
"""Written after the system text and after every user message (llava_v1 ``sep``)."""
ANSWER_SEPARATOR = "</s>"
"""Written after every completed assistant message (llava_v1 ``sep2``, the EOS text)."""

FRAME_IMAGE = IM_START_TOKEN + IMAGE_PLACEHOLDER + IM_END_TOKEN
"""One frame in a message (the official ``use_mm_start_end`` form of ``<image>``)."""
CONTEXT_INSTRUCTION = "Please finished the following tasks on the context frames above."
QUESTION_TEMPLATE = "Can you segment the {expression} in this frame?"
ANSWER_PREFIX = "Sure, the segmentation result is "
SEG_ANSWER = ANSWER_PREFIX + SEG_TOKEN + "."
"""The answer recorded for every earlier turn of the window."""

_RESERVED_TEXTS = {
    IMAGE_PLACEHOLDER: "the prompt is split on it to place the frames, so every frame would be misplaced",
    IM_START_TOKEN: "it is the model's image-start token, which would be read as a frame boundary",
    IM_END_TOKEN: "it is the model's image-end token, which would be read as a frame boundary",
    IM_PATCH_TOKEN: "it is a reserved image token of the model's vocabulary, not text",
    "<s>": "it is the model's beginning-of-sequence token, not text",
    "</s>": "it is the model's end-of-turn token and would end the question mid-sentence",
    "<unk>": "it is the model's unknown-token marker, not text",
}
"""Texts that the prompt or the tokenizer would read as structure rather than words, with the reason.

``[SEG]`` is not among them: expressions are lower-cased first, and ``[seg]`` is ordinary text."""


def normalize_expression(text: str) -> str:
    """The expression E as the official evaluation prompts it: one trailing ``.`` removed, lower-cased.

    Nothing else changes (no strip: surrounding spaces stay, as in the official prompt).
    ``"The dog."`` → ``"the dog"``; ``"a.."`` → ``"a."``.

    Raises:
        InputError: the result is empty or white space only, or contains a text that the prompt or the
            tokenizer would read as structure (``<image>``, ``<im_start>``, ``</s>``, …); the official
            code would silently build a broken prompt from it.
    """
    expression = text.removesuffix(".").lower()
    _check_expression(expression, original=text)
    return expression


def query_window(step: int, num_query_frames: int = NUM_QUERY_FRAMES) -> range:
    """Query positions shown in the prompt at query position ``step``: the last ``min(step + 1, N_Q)``.

    Args:
        step: 0-based position of the current query frame in the query sequence.
        num_query_frames: window length N_Q (4 in the official release).
    """
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")
    if num_query_frames < 1:
        raise ValueError(f"num_query_frames must be >= 1, got {num_query_frames}")
    return range(max(0, step + 1 - num_query_frames), step + 1)


def context_block(num_context_frames: int = NUM_CONTEXT_FRAMES) -> str:
    """The context frames and the instruction about them, which open the window's first user message."""
    if num_context_frames < 1:
        raise ValueError(f"num_context_frames must be >= 1, got {num_context_frames}")
    return FRAME_IMAGE * num_context_frames + "\n" + CONTEXT_INSTRUCTION + "\n"


def question(expression: str) -> str:
    """One query frame's user message: the frame, then the request to segment ``expression`` (E)."""
    return FRAME_IMAGE + "\n" + QUESTION_TEMPLATE.format(expression=expression)


def build_prompt(
    expression: str,
    step: int,
    num_context_frames: int = NUM_CONTEXT_FRAMES,
    num_query_frames: int = NUM_QUERY_FRAMES,
) -> str:
    """The exact prompt string for the query frame at position ``step``.

    Args:
        expression: the *normalized* expression E (see :func:`normalize_expression`); it is inserted as
            given.
        step: 0-based position of the current query frame in the query sequence.
        num_context_frames: N_C, the number of context images in the context block.
        num_query_frames: N_Q, the window length.

    Returns:
        ``SYSTEM USER: {C}{Q} ASSISTANT: {SEG_ANSWER}</s>USER: {Q} ASSISTANT: … ASSISTANT: {ANSWER_PREFIX}``,
        with one turn per window frame, ending in the answer prefix's trailing space (no final ``</s>``).

    Raises:
        InputError: ``expression`` is empty or contains reserved text.
    """
    _check_expression(expression, original=expression)
    window = query_window(step, num_query_frames)
    prompt = SYSTEM_MESSAGE + TURN_SEPARATOR
    for position in window:
        user_message = question(expression)
        if position == window.start:
            user_message = context_block(num_context_frames) + user_message
        prompt += f"{USER_ROLE}: {user_message}{TURN_SEPARATOR}{ASSISTANT_ROLE}: "
        prompt += ANSWER_PREFIX if position == step else SEG_ANSWER + ANSWER_SEPARATOR
    return prompt


def build_prompt_ids(
    tokenizer: GlusTokenizer,
    expression: str,
    step: int,
    num_context_frames: int = NUM_CONTEXT_FRAMES,
    num_query_frames: int = NUM_QUERY_FRAMES,
) -> list[int]:
    """Token ids of :func:`build_prompt`, with one ``IMAGE_TOKEN_INDEX`` per context and window frame.

    Args:
        tokenizer: the checkpoint's tokenizer.
        expression: the normalized expression E.
        step: 0-based position of the current query frame.
        num_context_frames: N_C.
        num_query_frames: N_Q.
    """
    return tokenizer.encode_prompt(build_prompt(expression, step, num_context_frames, num_query_frames))


def _check_expression(expression: str, original: str) -> None:
    """Raise InputError for an empty expression or one containing reserved text."""
    if not expression.strip():
        raise InputError(f'the expression "{original}" has no words (after removing one final period)')
    for text, reason in _RESERVED_TEXTS.items():
        if text in expression:
            raise InputError(f'the expression "{original}" contains {text!r}: {reason}')
