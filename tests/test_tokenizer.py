"""GlusTokenizer reproduces transformers 4.31's slow LLaMA tokenizer + LLaVA's ``tokenizer_image_token``.

Expected ids are built independently, piece by piece, with ``sentencepiece`` on the tiny tokenizer: each
text piece left after splitting and stripping is encoded as a fresh string (so it gets its own dummy
prefix ``▁``). The golden test against the real LLaMA vocabulary runs when ``GLUS_LLAMA_TOKENIZER``
names a folder with it.
"""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path

import pytest
import sentencepiece as spm

from glus_cli.errors import CheckpointError
from glus_cli.model.prompt import build_prompt_ids, normalize_expression
from glus_cli.model.tokenizer import IMAGE_TOKEN_INDEX, GlusTokenizer
from glus_cli.testing.tokenizer import (
    TINY_ADDED_TOKENS,
    TINY_NUM_PIECES,
    TINY_VOCAB_SIZE,
    build_tiny_tokenizer,
)

TOKENIZER_FILES = ("tokenizer.model", "added_tokens.json", "special_tokens_map.json", "tokenizer_config.json")

pytest_plugins = ["tests.fixtures"]


def copy_folder(source: Path, target: Path) -> Path:
    target.mkdir()
    for name in TOKENIZER_FILES:
        (target / name).write_bytes((source / name).read_bytes())
    return target


# --- the tiny tokenizer builder -------------------------------------------------------------------------


def test_tiny_tokenizer_has_the_checkpoint_layout(tokenizer_folder: Path, tok: GlusTokenizer) -> None:
    assert all((tokenizer_folder / name).is_file() for name in TOKENIZER_FILES)
    added = json.loads((tokenizer_folder / "added_tokens.json").read_text())
    assert added == {token: TINY_NUM_PIECES + i for i, token in enumerate(TINY_ADDED_TOKENS)}
    assert list(TINY_ADDED_TOKENS) == ["<im_patch>", "<im_start>", "<im_end>", "[SEG]"]
    config = json.loads((tokenizer_folder / "tokenizer_config.json").read_text())
    assert config["tokenizer_class"] == "LlamaTokenizer"
    assert (tok.unk_id, tok.bos_id, tok.eos_id, tok.pad_id) == (0, 1, 2, 0)
    assert [tok.im_start_id, tok.im_end_id, tok.seg_token_id] == [added[t] for t in TINY_ADDED_TOKENS[1:]]
    assert tok.vocab_size == TINY_VOCAB_SIZE == TINY_NUM_PIECES + 4


def test_tiny_tokenizer_build_is_deterministic(tmp_path: Path, tokenizer_folder: Path) -> None:
    assert build_tiny_tokenizer(tmp_path / "again") == TINY_VOCAB_SIZE
    for name in TOKENIZER_FILES:
        assert (tmp_path / "again" / name).read_bytes() == (tokenizer_folder / name).read_bytes(), name
    build_tiny_tokenizer(tmp_path / "other-seed", seed=1)
    model = (tmp_path / "other-seed" / "tokenizer.model").read_bytes()
    assert model != (tokenizer_folder / "tokenizer.model").read_bytes()


def test_tiny_vocabulary_follows_llama_settings(sp: spm.SentencePieceProcessor) -> None:
    assert sp.get_piece_size() == TINY_NUM_PIECES
    assert sp.encode("🙂", out_type=str) == ["▁", "<0xF0>", "<0x9F>", "<0x99>", "<0x82>"]  # byte fallback
    assert sp.encode("a  b", out_type=str)[:2] != sp.encode("a b", out_type=str)[:2]  # spaces not folded


# --- rules 1-4 on hand-made strings ---------------------------------------------------------------------


def test_seg_strips_both_sides_and_period_gets_a_dummy_prefix(
    tok: GlusTokenizer, sp: spm.SentencePieceProcessor
) -> None:
    assert tok.encode("[SEG].", add_bos=False) == [tok.seg_token_id, *sp.encode(".")]
    assert sp.encode(".", out_type=str)[0].startswith("▁")
    expected = [*sp.encode("result is"), tok.seg_token_id, *sp.encode(".")]
    assert tok.encode("result is [SEG].", add_bos=False) == expected
    assert tok.encode("result is [SEG] .", add_bos=False) == expected  # the official failure write-back


def test_special_tokens_strip_nothing(tok: GlusTokenizer, sp: spm.SentencePieceProcessor) -> None:
    assert tok.encode("</s>USER:", add_bos=False) == [tok.eos_id, *sp.encode("USER:")]
    assert tok.encode("a </s> b", add_bos=False) == [*sp.encode("a "), tok.eos_id, *sp.encode(" b")]
    assert tok.encode("x<s>y", add_bos=False) == [*sp.encode("x"), tok.bos_id, *sp.encode("y")]
    assert tok.encode("<unk>", add_bos=False) == [tok.unk_id]


def test_trailing_space_becomes_a_final_dummy_piece(
    tok: GlusTokenizer, sp: spm.SentencePieceProcessor
) -> None:
    ids = tok.encode("the segmentation result is ", add_bos=False)
    assert ids == sp.encode("the segmentation result is ")
    assert ids[-1] == sp.piece_to_id("▁")
    assert ids[:-1] == sp.encode("the segmentation result is")


def test_runs_of_spaces_are_kept_inside_text(tok: GlusTokenizer, sp: spm.SentencePieceProcessor) -> None:
    assert tok.encode("two  spaces   here", add_bos=False) == sp.encode("two  spaces   here")
    assert tok.encode("a  [SEG]  b  ", add_bos=False) == [
        *sp.encode("a"),
        tok.seg_token_id,
        *sp.encode("b  "),
    ]


def test_white_space_around_added_tokens_vanishes(tok: GlusTokenizer, sp: spm.SentencePieceProcessor) -> None:
    ids = tok.encode("<im_end>\nPlease finished.\n<im_start>", add_bos=False)
    assert ids == [tok.im_end_id, *sp.encode("Please finished."), tok.im_start_id]
    assert sp.piece_to_id("<0x0A>") not in ids
    assert tok.encode("<im_end> \n\t <im_start>", add_bos=False) == [tok.im_end_id, tok.im_start_id]
    assert tok.encode("\u3000[SEG]\xa0x", add_bos=False) == [tok.seg_token_id, *sp.encode("x")]


def test_bos_is_added_once_on_request(tok: GlusTokenizer, sp: spm.SentencePieceProcessor) -> None:
    assert tok.encode("") == [tok.bos_id]
    assert tok.encode("dog") == [tok.bos_id, *sp.encode("dog")]
    assert tok.encode("dog", add_bos=False) == sp.encode("dog")


def test_encode_prompt_places_one_placeholder_per_image(
    tok: GlusTokenizer, sp: spm.SentencePieceProcessor
) -> None:
    ids = tok.encode_prompt("A dog<image>B <image><image>\nC ")
    expected = [tok.bos_id, *sp.encode("A dog"), IMAGE_TOKEN_INDEX, *sp.encode("B ")]
    expected += [IMAGE_TOKEN_INDEX, IMAGE_TOKEN_INDEX, *sp.encode("\nC ")]
    assert ids == expected
    assert tok.encode_prompt("<image>x") == [tok.bos_id, IMAGE_TOKEN_INDEX, *sp.encode("x")]
    assert tok.encode_prompt("<im_start><image><im_end>") == [
        tok.bos_id,
        tok.im_start_id,
        IMAGE_TOKEN_INDEX,
        tok.im_end_id,
    ]


def test_prompt_ids_have_a_single_bos_and_one_placeholder_per_image(tok: GlusTokenizer) -> None:
    for step in range(7):
        ids = build_prompt_ids(tok, "the dog", step)
        assert ids[0] == tok.bos_id
        assert ids.count(tok.bos_id) == 1
        assert ids.count(IMAGE_TOKEN_INDEX) == 4 + min(step + 1, 4)


def test_decode_renders_tokens_and_images(tok: GlusTokenizer) -> None:
    ids = tok.encode_prompt("USER: <im_start><image><im_end>\nthe dog [SEG].</s>")
    assert tok.decode(ids) == "<s>USER:<im_start><image><im_end>the dog[SEG].</s>"


def test_token_to_id(tok: GlusTokenizer, sp: spm.SentencePieceProcessor) -> None:
    assert tok.token_to_id("[SEG]") == tok.seg_token_id
    assert tok.token_to_id("<0x0A>") == sp.piece_to_id("<0x0A>")
    assert tok.token_to_id("<unk>") == tok.unk_id
    with pytest.raises(KeyError):
        tok.token_to_id("not-a-piece")


# --- checkpoint errors ----------------------------------------------------------------------------------


def test_missing_tokenizer_model(tmp_path: Path, tokenizer_folder: Path) -> None:
    folder = copy_folder(tokenizer_folder, tmp_path / "ckpt")
    (folder / "tokenizer.model").unlink()
    with pytest.raises(CheckpointError, match=r"ckpt: no tokenizer\.model"):
        GlusTokenizer.from_pretrained(folder)


def test_corrupt_tokenizer_model(tmp_path: Path, tokenizer_folder: Path) -> None:
    folder = copy_folder(tokenizer_folder, tmp_path / "ckpt")
    (folder / "tokenizer.model").write_bytes(b"not a model")
    with pytest.raises(CheckpointError, match="not a sentencepiece model"):
        GlusTokenizer.from_pretrained(folder)


def test_missing_added_tokens_file(tmp_path: Path, tokenizer_folder: Path) -> None:
    folder = copy_folder(tokenizer_folder, tmp_path / "ckpt")
    (folder / "added_tokens.json").unlink()
    with pytest.raises(CheckpointError, match=r"no added_tokens\.json .*\[SEG\]"):
        GlusTokenizer.from_pretrained(folder)


@pytest.mark.parametrize("token", ["[SEG]", "<im_start>", "<im_end>"])
def test_missing_required_added_token(tmp_path: Path, tokenizer_folder: Path, token: str) -> None:
    folder = copy_folder(tokenizer_folder, tmp_path / "ckpt")
    kept = [name for name in TINY_ADDED_TOKENS if name != token]
    added = {name: TINY_NUM_PIECES + i for i, name in enumerate(kept)}
    (folder / "added_tokens.json").write_text(json.dumps(added))
    with pytest.raises(CheckpointError, match=f"missing {re.escape(token)}"):
        GlusTokenizer.from_pretrained(folder)


def test_added_token_ids_must_follow_the_pieces(tmp_path: Path, tokenizer_folder: Path) -> None:
    folder = copy_folder(tokenizer_folder, tmp_path / "ckpt")
    added = {name: TINY_NUM_PIECES + 1 + i for i, name in enumerate(TINY_ADDED_TOKENS)}
    (folder / "added_tokens.json").write_text(json.dumps(added))
    with pytest.raises(CheckpointError, match="without gaps"):
        GlusTokenizer.from_pretrained(folder)


def test_added_token_ids_are_read_from_the_file(tmp_path: Path, tokenizer_folder: Path) -> None:
    folder = copy_folder(tokenizer_folder, tmp_path / "ckpt")
    order = ["[SEG]", "<im_end>", "<im_start>"]  # another order, and no <im_patch>
    added = {token: TINY_NUM_PIECES + i for i, token in enumerate(order)}
    (folder / "added_tokens.json").write_text(json.dumps(added))
    tok = GlusTokenizer.from_pretrained(folder)
    assert [tok.seg_token_id, tok.im_end_id, tok.im_start_id] == list(added.values())
    assert tok.vocab_size == TINY_NUM_PIECES + 3


def test_eos_per_chunk_config_is_rejected(tmp_path: Path, tokenizer_folder: Path) -> None:
    folder = copy_folder(tokenizer_folder, tmp_path / "ckpt")
    config = json.loads((folder / "tokenizer_config.json").read_text())
    (folder / "tokenizer_config.json").write_text(json.dumps({**config, "add_eos_token": True}))
    with pytest.raises(CheckpointError, match="add_eos_token"):
        GlusTokenizer.from_pretrained(folder)


def test_non_legacy_config_warns_and_keeps_legacy_ids(
    tmp_path: Path, tokenizer_folder: Path, tok: GlusTokenizer, caplog: pytest.LogCaptureFixture
) -> None:
    folder = copy_folder(tokenizer_folder, tmp_path / "ckpt")
    config = json.loads((folder / "tokenizer_config.json").read_text())
    (folder / "tokenizer_config.json").write_text(json.dumps({**config, "legacy": False}))
    with caplog.at_level(logging.WARNING):
        other = GlusTokenizer.from_pretrained(folder)
    assert "legacy=false" in caplog.text
    assert other.encode("</s>USER: [SEG].") == tok.encode("</s>USER: [SEG].")


# --- golden ids on the real LLaMA vocabulary ------------------------------------------------------------

GOLDEN_EXPRESSION = "The panda that has stayed in place with little movement"
GOLDEN_FRAME_1 = [
    1, 319, 13563, 1546, 263, 12758, 5199, 322, 385, 23116, 21082, 20255, 29889, 450, 20255, 4076, 8444,
    29892, 13173, 29892, 322, 1248, 568, 6089, 304, 278, 5199, 29915, 29879, 5155, 29889, 3148, 1001, 29901,
    32001, -200, 32002, 32001, -200, 32002, 32001, -200, 32002, 32001, -200, 32002,
    3529, 7743, 278, 1494, 9595, 373, 278, 3030, 16608, 2038, 29889,
    32001, -200, 32002,
    1815, 366, 10768, 278,
    278, 282, 5863, 393, 756, 27661, 297, 2058, 411, 2217, 10298,
    297, 445, 3515, 29973,
    319, 1799, 9047, 13566, 29901, 18585, 29892, 278, 10768, 362, 1121, 338, 29871,
]  # fmt: skip


@pytest.fixture(scope="module")
def llama() -> GlusTokenizer:
    folder = os.environ.get("GLUS_LLAMA_TOKENIZER")
    if not folder:
        pytest.skip("GLUS_LLAMA_TOKENIZER is not set (a folder with the real LLaMA tokenizer files)")
    if not (Path(folder) / "tokenizer.model").is_file():
        pytest.skip(f"GLUS_LLAMA_TOKENIZER={folder} has no tokenizer.model")
    return GlusTokenizer.from_pretrained(folder)


def test_golden_ids_on_the_real_llama_vocabulary(llama: GlusTokenizer) -> None:
    assert [llama.im_start_id, llama.im_end_id, llama.seg_token_id] == [32001, 32002, 32003]
    assert llama.vocab_size == 32004
    expression = normalize_expression(GOLDEN_EXPRESSION)
    frames = [build_prompt_ids(llama, expression, step) for step in range(7)]  # query frames 1..7

    assert len(frames[0]) == 92
    assert frames[0] == GOLDEN_FRAME_1
    assert [len(ids) for ids in frames] == [92, 132, 172, 212, 212, 212, 212]
    assert frames[3] == frames[4] == frames[5] == frames[6]

    # Frame 2: the first turn is finished with `▁is [SEG] ▁. </s>`, the next starts `▁US ER : <im_start>`.
    turn_end = [*GOLDEN_FRAME_1[-17:-1], 32003, 869, 2, 3148, 1001, 29901, 32001, -200, 32002, 1815]
    assert frames[1][: len(GOLDEN_FRAME_1) - 1] == GOLDEN_FRAME_1[:-1]
    assert frames[1][len(GOLDEN_FRAME_1) - 17 : len(GOLDEN_FRAME_1) + 9] == turn_end
    assert all(ids[-2:] == [338, 29871] for ids in frames)
    assert all(ids[:58] == GOLDEN_FRAME_1[:58] for ids in frames)  # shared prefix: BOS … first <im_start>
