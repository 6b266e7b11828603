"""End-to-end GLUS inference on the tiny synthetic checkpoint (public API), and SAM2's per-frame protocol.

Videos are 1-4 small frames: every query frame runs the LLM and SAM2 at 1024 pixels. Results that several
tests inspect are computed once per module.
"""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

from glus_cli import hardware
from glus_cli.errors import InputError, ResourceError
from glus_cli.model.checkpoint import read_checkpoint, weight_files
from glus_cli.model.glus import GlusModel, load_glus, resolve_device, resolve_dtype
from glus_cli.model.memory_bank import MemoryBank
from glus_cli.pipeline import segment
from glus_cli.precision import DeviceCapabilities
from glus_cli.protocol import FrameResult
from glus_cli.testing.checkpoint import SyntheticCheckpoint
from tests.fixtures import (
    EXPRESSION,
    OTHER_EXPRESSION,
    VIDEO_SIZE,
    CheckpointFactory,
    ModelFactory,
    file_digests,
    run,
    synthetic_frame,
    synthetic_video,
)

pytest_plugins = ["tests.fixtures"]

CUDA = torch.cuda.is_available()


def _masks(results: list[FrameResult], expression_index: int = 0) -> list[np.ndarray]:
    return [r.mask for r in results if r.expression_index == expression_index]


@pytest.fixture(scope="module")
def video_results(tiny_model: GlusModel) -> list[FrameResult]:
    """The 3-frame default video with the default expression and another one."""
    return run(tiny_model, synthetic_video(3), [EXPRESSION, OTHER_EXPRESSION])


# --- masks ------------------------------------------------------------------------------------------


def test_results_order_and_fields(video_results: list[FrameResult]) -> None:
    assert len(video_results) == 6
    assert [(r.expression_index, r.frame_index, r.position) for r in video_results] == [
        (e, f, f) for f in range(3) for e in range(2)
    ]
    assert all(r.direction == "forward" and r.is_seg for r in video_results)


def test_mask_shape_dtype_and_foreground(video_results: list[FrameResult]) -> None:
    """Masks are bool at the frame's size, and the default fixture segments something but not everything."""
    masks = _masks(video_results)
    for mask in masks:
        assert mask.shape == VIDEO_SIZE and mask.dtype == np.bool_
        assert 0.01 < mask.mean() < 0.99
    assert 0.05 < np.mean(masks) < 0.95


def test_iou_and_object_score_are_floats(video_results: list[FrameResult]) -> None:
    for result in video_results:
        assert type(result.iou) is float and type(result.object_score) is float
        assert 0.0 <= result.iou <= 1.0  # sigmoid IoU head (iou_prediction_use_sigmoid)
        assert np.isfinite(result.object_score)


def test_masks_depend_on_the_expression(video_results: list[FrameResult]) -> None:
    ours, other = _masks(video_results, 0), _masks(video_results, 1)
    disagreement = [np.mean(a != b) for a, b in zip(ours, other, strict=True)]
    assert max(disagreement) > 0.05, disagreement


def test_expression_normalisation(single_frame_results: list[FrameResult]) -> None:
    """'The Dog.' is prompted as 'the dog' (lower-cased, trailing '.' removed): bit-identical results."""
    plain, written, other = single_frame_results
    assert np.array_equal(plain.mask, written.mask)
    assert (plain.iou, plain.object_score) == (written.iou, written.object_score)
    assert plain.iou != other.iou


def test_two_runs_are_identical(tiny_model: GlusModel, video_results: list[FrameResult]) -> None:
    again = run(tiny_model, synthetic_video(3))
    for a, b in zip(_masks(video_results), _masks(again), strict=True):
        assert np.array_equal(a, b)
    assert [r.iou for r in again] == [r.iou for r in video_results if r.expression_index == 0]


def test_masks_do_not_leak_between_expressions(
    tiny_model: GlusModel, single_frame_results: list[FrameResult]
) -> None:
    """An expression segmented after others gets the same result as when it is segmented alone."""
    alone = run(tiny_model, synthetic_video(1), [OTHER_EXPRESSION])
    assert np.array_equal(alone[0].mask, single_frame_results[2].mask)
    assert alone[0].iou == single_frame_results[2].iou


# --- checkpoints built from the same or another seed ------------------------------------------------


def _shard_digests(checkpoint: SyntheticCheckpoint) -> dict[str, str]:
    return file_digests(checkpoint.path, [p.name for p in weight_files(checkpoint.path)])


def test_same_seed_gives_identical_files_and_masks(
    checkpoints: CheckpointFactory, models: ModelFactory, single_frame_results: list[FrameResult]
) -> None:
    first, second = checkpoints(), checkpoints(copy=1)
    assert first.path != second.path
    digests = _shard_digests(first)
    assert len(digests) == 2 and digests == _shard_digests(second)
    tokenizer_files = [
        "tokenizer.model",
        "added_tokens.json",
        "tokenizer_config.json",
        "special_tokens_map.json",
    ]
    assert file_digests(first.path, tokenizer_files) == file_digests(second.path, tokenizer_files)
    assert file_digests(first.vision_tower) == file_digests(second.vision_tower)
    again = run(models(second), synthetic_video(1))
    assert np.array_equal(again[0].mask, single_frame_results[0].mask)
    assert again[0].iou == single_frame_results[0].iou


def test_other_seed_gives_other_weights(checkpoints: CheckpointFactory) -> None:
    ours, theirs = checkpoints(), checkpoints(seed=1)
    assert set(_shard_digests(ours).values()).isdisjoint(_shard_digests(theirs).values())
    assert file_digests(ours.vision_tower) != file_digests(theirs.vision_tower)
    a, b = read_checkpoint(ours.path), read_checkpoint(theirs.path)
    for group in ("llm", "mm_projector", "text_hidden_fcs"):
        first, second = getattr(a, group), getattr(b, group)
        assert all(not torch.equal(first[k], second[k]) for k in first if k.endswith("proj.weight")), group
        assert any(not torch.equal(first[k], second[k]) for k in first), group
    assert not torch.equal(
        a.sam2["sam_mask_decoder.iou_token.weight"], b.sam2["sam_mask_decoder.iou_token.weight"]
    )


# --- no [SEG] ---------------------------------------------------------------------------------------


def test_no_seg_gives_blank_masks_and_warnings(
    never_model: GlusModel, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        results = run(never_model, synthetic_video(3))
    assert [r.frame_index for r in results] == [0, 1, 2]
    for result in results:
        assert result.mask.shape == VIDEO_SIZE and result.mask.dtype == np.bool_
        assert not result.mask.any()
        assert result.is_seg is False and result.iou is None and result.object_score is None
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and "[SEG]" in r.getMessage()]
    assert len(warnings) == 3


def test_no_seg_in_key_frame_mode_still_yields_every_visit(never_model: GlusModel) -> None:
    results = run(never_model, synthetic_video(3), keyframes=[1])
    assert [(r.frame_index, r.position, r.direction) for r in results] == [
        (1, 0, "forward"),
        (2, 1, "forward"),
        (1, 0, "backward"),
        (0, 1, "backward"),
    ]
    assert not any(r.mask.any() or r.is_seg for r in results)


# --- short videos, odd sizes, key frames ------------------------------------------------------------


def test_one_frame_video(single_frame_results: list[FrameResult]) -> None:
    """The official loaders skipped videos under 4 frames; glus-cli segments them."""
    assert [(r.expression_index, r.frame_index, r.position) for r in single_frame_results] == [
        (0, 0, 0),
        (1, 0, 0),
        (2, 0, 0),
    ]
    for result in single_frame_results:
        assert result.is_seg and result.mask.shape == VIDEO_SIZE
        assert result.mask.any() and not result.mask.all()


def test_two_frame_video_of_odd_size(tiny_model: GlusModel) -> None:
    frames = synthetic_video(2, size=(37, 53))
    masks = segment(tiny_model, frames, EXPRESSION)
    assert len(masks) == 2
    for mask in masks:
        assert mask.shape == (37, 53) and mask.dtype == np.bool_


def test_three_frame_video(video_results: list[FrameResult]) -> None:
    assert [r.frame_index for r in video_results if r.expression_index == 0] == [0, 1, 2]


def test_key_frame_mode(tiny_model: GlusModel, video_results: list[FrameResult]) -> None:
    """Forward k..n-1, then backward k..0, positions restarting at 0; the key frame's masks coincide."""
    results = run(tiny_model, synthetic_video(3), keyframes=[1])
    assert [(r.frame_index, r.position, r.direction) for r in results] == [
        (1, 0, "forward"),
        (2, 1, "forward"),
        (1, 0, "backward"),
        (0, 1, "backward"),
    ]
    assert all(r.is_seg for r in results)
    forward_key, backward_key = results[0], results[2]
    assert np.array_equal(forward_key.mask, backward_key.mask)
    assert forward_key.iou == backward_key.iou
    # Positions restart: frame 1 at position 0 has a one-frame prompt window and an empty bank, unlike
    # frame 1 of the plain pass (position 1: a two-frame window and frame 0's memory).
    plain_frame1 = next(r for r in video_results if (r.expression_index, r.frame_index) == (0, 1))
    assert (plain_frame1.frame_index, plain_frame1.position) == (1, 1)
    assert plain_frame1.iou != forward_key.iou


def test_key_frame_count_must_match_expressions(tiny_model: GlusModel) -> None:
    with pytest.raises(InputError):
        run(tiny_model, synthetic_video(1), [EXPRESSION], keyframes=[0, 0])


# --- devices and dtypes -----------------------------------------------------------------------------


def test_resolve_device() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
    if not CUDA and not torch.backends.mps.is_available():
        assert resolve_device("auto") == torch.device("cpu")
        assert resolve_device(None) == torch.device("cpu")
    for name in ("banana", "gpu", "cuda:x", ""):
        with pytest.raises(InputError, match="unknown device"):
            resolve_device(name)


@pytest.mark.skipif(CUDA, reason="this machine has CUDA")
@pytest.mark.parametrize("name", ["cuda", "cuda:0", "cuda:3"])
def test_resolve_device_cuda_without_gpu(name: str) -> None:
    with pytest.raises(ResourceError, match="CUDA"):
        resolve_device(name)


@pytest.mark.skipif(CUDA, reason="this machine has CUDA")
def test_load_on_cuda_without_gpu(tiny_checkpoint: SyntheticCheckpoint) -> None:
    with pytest.raises(ResourceError):
        load_glus(tiny_checkpoint.path, device="cuda")


def test_resolve_dtype(monkeypatch: pytest.MonkeyPatch) -> None:
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    probes = {
        "cpu": DeviceCapabilities("cpu", False, "AVX2 kernels"),
        "cuda": DeviceCapabilities("cuda", True, "NVIDIA H100, sm90"),
    }
    monkeypatch.setattr(hardware, "probe_device", lambda device: probes[device.type])
    assert resolve_dtype(None, cpu) == torch.float32  # no native bf16 on this (patched) CPU
    assert resolve_dtype("auto", cpu) == torch.float32
    assert resolve_dtype(None, cuda) == torch.bfloat16  # the official setting
    assert resolve_dtype("auto", cuda) == torch.bfloat16
    assert resolve_dtype("bfloat16", cpu) == resolve_dtype("bf16", cpu) == torch.bfloat16
    assert resolve_dtype("float16", cpu) == resolve_dtype("fp16", cpu) == torch.float16
    assert resolve_dtype("float32", cuda) == resolve_dtype("fp32", cuda) == torch.float32
    assert resolve_dtype(torch.float64, cpu) == torch.float64
    for name in ("float64", "BFLOAT16", "bf32"):
        with pytest.raises(InputError, match="unknown dtype"):
            resolve_dtype(name, cpu)


def test_tiny_model_fixture_is_fp32_on_cpu(tiny_model: GlusModel) -> None:
    """The fixtures load in float32 explicitly: the parity tests' precision on any CPU."""
    assert tiny_model.device == torch.device("cpu") and tiny_model.dtype == torch.float32
    assert (tiny_model.info.device, tiny_model.info.dtype) == ("cpu", "float32")
    assert tiny_model.language.llm.lm_head.weight.dtype == torch.float32


def test_bfloat16_model_segments(models: ModelFactory, tiny_checkpoint: SyntheticCheckpoint) -> None:
    """The official precision (bf16) on CPU: GLUS's dense-PE recipe keeps SAM2 from failing on dtypes."""
    model = models(tiny_checkpoint, dtype="bfloat16")
    assert model.dtype == torch.bfloat16 and model.info.dtype == "bfloat16"
    results = run(model, synthetic_video(1))
    assert results[0].is_seg and results[0].mask.shape == VIDEO_SIZE and results[0].mask.dtype == np.bool_


# --- SAM2 protocol (glus-spec §6, reference §5.4-5.8) -----------------------------------------------


def test_sam2_frame_protocol(tiny_model: GlusModel) -> None:
    """Dense PE as upstream in fp32; frame 0 conditioned by no_mem_embed; memory encoded from the conditioned
    features (GLUS), not the raw backbone features (upstream SAM2); memory attention over the bank."""
    segmenter = tiny_model.segmenter
    sam2 = segmenter.sam2
    assert tiny_model.dtype == torch.float32
    with torch.inference_mode():
        assert torch.equal(segmenter.dense_positional_encoding(), sam2.sam_prompt_encoder.get_dense_pe())

    features = segmenter.encode_frame(segmenter.preprocess(synthetic_frame(0)))
    assert features.feat_sizes == [(256, 256), (128, 128), (64, 64)]
    raw = features.vision_feats[-1]
    assert tuple(raw.shape) == (64 * 64, 1, 32)

    conditioned = segmenter.condition_on_memory(features, None)
    assert torch.equal(conditioned, raw + sam2.no_mem_embed)
    assert not torch.equal(conditioned, raw)

    generator = torch.Generator().manual_seed(0)
    prompt = torch.randn(1, 1, 32, generator=generator) * 20
    decoded = segmenter.decode(features, conditioned, prompt)
    assert tuple(decoded.low_res_logits.shape) == (1, 1, 256, 256)
    entry = segmenter.encode_memory(features, conditioned, decoded)

    high_res = F.interpolate(
        decoded.low_res_logits.float(), (1024, 1024), mode="bilinear", align_corners=False
    )
    common = {
        "feat_sizes": features.feat_sizes,
        "pred_masks_high_res": high_res,
        "object_score_logits": decoded.object_score,
        "is_mask_from_pts": False,
    }
    with torch.inference_mode():
        glus_feats, glus_pos = sam2._encode_new_memory(
            current_vision_feats=[*features.vision_feats[:-1], conditioned], **common
        )
        upstream_feats, _ = sam2._encode_new_memory(current_vision_feats=features.vision_feats, **common)
    assert torch.equal(entry.features, glus_feats)
    assert torch.equal(entry.pos_enc, glus_pos[0])
    assert tuple(entry.features.shape) == (1, 16, 64, 64)
    assert (entry.features - upstream_feats).abs().max() > 1e-4

    # The next position reads this memory through memory_attention (no pointers, no temporal encoding).
    bank = MemoryBank()
    bank.write(0, entry)
    readout = bank.read(1)
    assert readout is not None
    attended = segmenter.condition_on_memory(features, readout)
    with torch.inference_mode(), sdpa_kernel([SDPBackend.MATH]):
        expected = sam2.memory_attention(
            curr=[raw],
            curr_pos=[features.vision_pos[-1]],
            memory=entry.features.flatten(2).permute(2, 0, 1),
            memory_pos=entry.pos_enc.flatten(2).permute(2, 0, 1),
            num_obj_ptr_tokens=0,
        )
    assert torch.equal(attended, expected)
    assert tuple(attended.shape) == tuple(raw.shape)
