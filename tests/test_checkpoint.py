"""Checkpoint reading and loading: key routing, weight files, and one-line errors (reference §1)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from glus_cli.errors import CheckpointError, InputError
from glus_cli.model.checkpoint import iter_tensors, read_checkpoint, route_key, weight_files
from glus_cli.model.glus import load_glus
from glus_cli.model.segmenter import build_sam2_model
from glus_cli.protocol import FrameResult
from glus_cli.testing.checkpoint import TINY_SAM2_FILE, SyntheticCheckpoint
from tests.fixtures import CheckpointFactory, ModelFactory, run, synthetic_video

pytest_plugins = ["tests.fixtures"]

BF16_1E_6 = 9.98377799987793e-07  # bf16(1e-6), what the official inference_iter.py leaves in the fuser


# --- route_key --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("model.embed_tokens.weight", ("llm", "model.embed_tokens.weight")),
        ("model.layers.0.self_attn.q_proj.weight", ("llm", "model.layers.0.self_attn.q_proj.weight")),
        ("model.layers.31.mlp.down_proj.weight", ("llm", "model.layers.31.mlp.down_proj.weight")),
        (
            "model.layers.7.post_attention_layernorm.weight",
            ("llm", "model.layers.7.post_attention_layernorm.weight"),
        ),
        ("model.norm.weight", ("llm", "model.norm.weight")),
        ("lm_head.weight", ("llm", "lm_head.weight")),
        ("model.mm_projector.weight", ("mm_projector", "weight")),
        ("model.mm_projector.bias", ("mm_projector", "bias")),
        ("model.text_hidden_fcs.0.0.weight", ("text_hidden_fcs", "0.0.weight")),
        ("model.text_hidden_fcs.0.2.bias", ("text_hidden_fcs", "0.2.bias")),
        ("model.visual_model.no_mem_embed", ("sam2", "no_mem_embed")),
        ("model.visual_model.image_encoder.trunk.pos_embed", ("sam2", "image_encoder.trunk.pos_embed")),
        (
            "model.visual_model.memory_encoder.fuser.layers.1.gamma",
            ("sam2", "memory_encoder.fuser.layers.1.gamma"),
        ),
        (
            "model.visual_model.sam_mask_decoder.iou_token.weight",
            ("sam2", "sam_mask_decoder.iou_token.weight"),
        ),
    ],
)
def test_route_key(key: str, expected: tuple[str, str]) -> None:
    assert route_key(key) == expected


@pytest.mark.parametrize(
    "key",
    [
        "model.vision_tower.vision_tower.vision_model.embeddings.class_embedding",
        "model.vision_tower.vision_tower.vision_model.encoder.layers.23.mlp.fc2.weight",
        "model.layers.0.self_attn.rotary_emb.inv_freq",
        "model.layers.31.self_attn.rotary_emb.inv_freq",
    ],
)
def test_route_key_ignores_what_the_official_loader_ignores(key: str) -> None:
    assert route_key(key) is None


@pytest.mark.parametrize(
    "key",
    [
        "model.downsample_layer.weight",
        "visual_model.no_mem_embed",
        "model.lm_head.weight",
        "model.normalizer.weight",
        "transformer.h.0.attn.c_attn.weight",
        "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight",
        "",
    ],
)
def test_route_key_rejects_unknown_keys(key: str) -> None:
    with pytest.raises(CheckpointError, match="unexpected key") as error:
        route_key(key)
    assert key in str(error.value)


# --- weight_files -----------------------------------------------------------------------------------


def _touch(folder: Path, *names: str) -> None:
    for name in names:
        (folder / name).write_bytes(b"")


def _index(folder: Path, name: str, weight_map: dict[str, str]) -> None:
    (folder / name).write_text(json.dumps({"metadata": {}, "weight_map": weight_map}), encoding="utf-8")


def test_weight_files_bin_index(tmp_path: Path) -> None:
    shards = ["pytorch_model-00001-of-00002.bin", "pytorch_model-00002-of-00002.bin"]
    _touch(tmp_path, *shards)
    _index(tmp_path, "pytorch_model.bin.index.json", {"b": shards[1], "a": shards[0], "c": shards[1]})
    assert weight_files(tmp_path) == [tmp_path / shards[0], tmp_path / shards[1]]


def test_weight_files_safetensors_index_preferred(tmp_path: Path) -> None:
    bins = ["pytorch_model-00001-of-00002.bin", "pytorch_model-00002-of-00002.bin"]
    safes = ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]
    _touch(tmp_path, *bins, *safes)
    _index(tmp_path, "pytorch_model.bin.index.json", {"a": bins[0], "b": bins[1]})
    _index(tmp_path, "model.safetensors.index.json", {"a": safes[1], "b": safes[0]})
    assert weight_files(tmp_path) == [tmp_path / safes[0], tmp_path / safes[1]]


@pytest.mark.parametrize("name", ["pytorch_model.bin", "model.safetensors"])
def test_weight_files_single_file(tmp_path: Path, name: str) -> None:
    _touch(tmp_path, name, "config.json")
    assert weight_files(tmp_path) == [tmp_path / name]


def test_weight_files_single_safetensors_preferred(tmp_path: Path) -> None:
    _touch(tmp_path, "pytorch_model.bin", "model.safetensors")
    assert weight_files(tmp_path) == [tmp_path / "model.safetensors"]


def test_weight_files_missing_shard(tmp_path: Path) -> None:
    _touch(tmp_path, "pytorch_model-00001-of-00002.bin")
    _index(
        tmp_path,
        "pytorch_model.bin.index.json",
        {"a": "pytorch_model-00001-of-00002.bin", "b": "pytorch_model-00002-of-00002.bin"},
    )
    with pytest.raises(CheckpointError, match=r"pytorch_model-00002-of-00002\.bin") as error:
        weight_files(tmp_path)
    assert "missing" in str(error.value)
    assert "pytorch_model-00001-of-00002.bin" not in str(error.value)


@pytest.mark.parametrize("content", ["{not json", '{"metadata": {}}', '["a"]', '{"weight_map": {"a": 1}}'])
def test_weight_files_malformed_index(tmp_path: Path, content: str) -> None:
    (tmp_path / "pytorch_model.bin.index.json").write_text(content, encoding="utf-8")
    with pytest.raises(CheckpointError, match="weight index"):
        weight_files(tmp_path)


def test_weight_files_no_weights(tmp_path: Path) -> None:
    _touch(tmp_path, "config.json", "tokenizer.model", "model.pt")
    with pytest.raises(CheckpointError, match="has no weights"):
        weight_files(tmp_path)


def test_iter_tensors_corrupt_file(tmp_path: Path) -> None:
    for name in ("pytorch_model.bin", "model.safetensors"):
        (tmp_path / name).write_bytes(b"definitely not tensors")
        with pytest.raises(CheckpointError, match="cannot read weight file"):
            list(iter_tensors(tmp_path / name))


# --- read_checkpoint on the tiny checkpoint --------------------------------------------------------


def test_read_checkpoint_splits_by_module(tiny_checkpoint: SyntheticCheckpoint) -> None:
    parts = read_checkpoint(tiny_checkpoint.path)
    layer_keys = {
        f"model.layers.{i}.{name}.weight"
        for i in range(2)
        for name in (
            "self_attn.q_proj",
            "self_attn.k_proj",
            "self_attn.v_proj",
            "self_attn.o_proj",
            "mlp.gate_proj",
            "mlp.up_proj",
            "mlp.down_proj",
            "input_layernorm",
            "post_attention_layernorm",
        )
    }
    assert set(parts.llm) == {"model.embed_tokens.weight", "model.norm.weight", "lm_head.weight"} | layer_keys
    assert set(parts.mm_projector) == {"weight", "bias"}
    assert set(parts.text_hidden_fcs) == {"0.0.weight", "0.0.bias", "0.2.weight", "0.2.bias"}
    assert sorted(parts.ignored) == [f"model.layers.{i}.self_attn.rotary_emb.inv_freq" for i in range(2)]
    sam2 = build_sam2_model(tiny_checkpoint.path / TINY_SAM2_FILE)
    assert set(parts.sam2) == set(sam2.state_dict())
    assert parts.sam2["no_mem_embed"].shape == (1, 1, 32)
    for group in (parts.llm, parts.mm_projector, parts.text_hidden_fcs, parts.sam2):
        assert all(tensor.dtype == torch.bfloat16 for tensor in group.values())


def test_read_checkpoint_names_every_unexpected_key(checkpoints: CheckpointFactory, tmp_path: Path) -> None:
    folder = _clone(checkpoints(), tmp_path / "glus")
    _rewrite_weights(folder, lambda s: s.update({"model.foo.weight": torch.ones(1), "extra": torch.ones(1)}))
    with pytest.raises(CheckpointError, match="belong to no GLUS module") as error:
        read_checkpoint(folder)
    assert "model.foo.weight" in str(error.value) and "extra" in str(error.value)


@pytest.mark.parametrize(
    "build",
    [
        {"weight_format": "bin", "num_shards": 1},
        {"weight_format": "safetensors", "num_shards": 1},
        {"weight_format": "safetensors", "num_shards": 2},
        {"weight_format": "bin", "num_shards": 3},
    ],
)
def test_weight_formats_hold_the_same_tensors(checkpoints: CheckpointFactory, build: dict) -> None:
    reference = read_checkpoint(checkpoints().path)
    other_checkpoint = checkpoints(**build)
    assert len(weight_files(other_checkpoint.path)) == build["num_shards"]
    other = read_checkpoint(other_checkpoint.path)
    for name in ("llm", "mm_projector", "text_hidden_fcs", "sam2"):
        ours, theirs = getattr(reference, name), getattr(other, name)
        assert ours.keys() == theirs.keys()
        assert all(torch.equal(ours[key], theirs[key]) for key in ours), name


@pytest.mark.parametrize(
    "build",
    [
        {"weight_format": "bin", "num_shards": 1},
        {"weight_format": "safetensors", "num_shards": 1},
        {"weight_format": "safetensors", "num_shards": 2},
    ],
)
def test_weight_formats_give_bit_identical_masks(
    checkpoints: CheckpointFactory,
    models: ModelFactory,
    single_frame_results: list[FrameResult],
    build: dict,
) -> None:
    """The default checkpoint (two .bin shards) and the same seed in other formats give the same results."""
    reference = single_frame_results[0]
    other = run(models(checkpoints(**build)), synthetic_video(1))
    assert len(other) == 1
    assert np.array_equal(reference.mask, other[0].mask)
    assert (reference.iou, reference.object_score) == (other[0].iou, other[0].object_score)


# --- load_glus errors -------------------------------------------------------------------------------


def _clone(checkpoint: SyntheticCheckpoint, destination: Path) -> Path:
    """A copy of the checkpoint's GLUS folder (config.json names the CLIP folder by absolute path)."""
    shutil.copytree(checkpoint.path, destination)
    return destination


def _rewrite_weights(folder: Path, edit: Callable[[dict[str, torch.Tensor]], None]) -> None:
    """Replace the folder's weights with one `pytorch_model.bin` holding `edit`ed tensors."""
    state: dict[str, torch.Tensor] = {}
    shards = weight_files(folder)
    for shard in shards:
        state.update((name, tensor.clone()) for name, tensor in iter_tensors(shard))
    edit(state)
    for path in [*shards, *folder.glob("*.index.json")]:
        path.unlink()
    torch.save(state, folder / "pytorch_model.bin")


def _edit_config(folder: Path, edit: Callable[[dict], None]) -> None:
    path = folder / "config.json"
    config = json.loads(path.read_text(encoding="utf-8"))
    edit(config)
    path.write_text(json.dumps(config), encoding="utf-8")


def _load_error(folder: Path, **kwargs: object) -> str:
    """The message of the CheckpointError load_glus raises; it must be a single line."""
    with pytest.raises(CheckpointError) as error:
        load_glus(folder, device="cpu", **kwargs)
    message = str(error.value)
    assert "\n" not in message, message
    return message


@pytest.mark.parametrize(
    ("key", "local_name", "prefix"),
    [
        ("model.visual_model.no_mem_embed", "no_mem_embed", "model.visual_model."),
        (
            "model.visual_model.memory_encoder.fuser.layers.0.gamma",
            "memory_encoder.fuser.layers.0.gamma",
            "model.visual_model.",
        ),
        ("model.layers.1.mlp.up_proj.weight", "model.layers.1.mlp.up_proj.weight", "model.layers."),
        ("lm_head.weight", "lm_head.weight", "lm_head"),
        ("model.mm_projector.bias", "bias", "model.mm_projector."),
        ("model.text_hidden_fcs.0.2.weight", "0.2.weight", "model.text_hidden_fcs."),
    ],
)
def test_load_missing_key(
    checkpoints: CheckpointFactory, tmp_path: Path, key: str, local_name: str, prefix: str
) -> None:
    folder = _clone(checkpoints(), tmp_path / "glus")
    _rewrite_weights(folder, lambda state: state.pop(key))
    message = _load_error(folder)
    assert "missing" in message and local_name in message and prefix in message


@pytest.mark.parametrize(
    ("key", "local_name"),
    [
        ("model.visual_model.extra_embed", "extra_embed"),
        ("model.text_hidden_fcs.0.4.weight", "0.4.weight"),
        ("model.layers.2.self_attn.q_proj.weight", "model.layers.2.self_attn.q_proj.weight"),
    ],
)
def test_load_unexpected_key(
    checkpoints: CheckpointFactory, tmp_path: Path, key: str, local_name: str
) -> None:
    folder = _clone(checkpoints(), tmp_path / "glus")
    _rewrite_weights(folder, lambda state: state.update({key: torch.zeros(2)}))
    message = _load_error(folder)
    assert "unexpected" in message and local_name in message


def test_load_key_of_no_module(checkpoints: CheckpointFactory, tmp_path: Path) -> None:
    folder = _clone(checkpoints(), tmp_path / "glus")
    _rewrite_weights(folder, lambda state: state.update({"model.downsample_layer.weight": torch.zeros(2)}))
    assert "model.downsample_layer.weight" in _load_error(folder)


def test_load_shape_mismatch(checkpoints: CheckpointFactory, tmp_path: Path) -> None:
    folder = _clone(checkpoints(), tmp_path / "glus")
    _rewrite_weights(
        folder, lambda state: state.update({"model.visual_model.no_mem_embed": torch.zeros(1, 1, 16)})
    )
    message = _load_error(folder)
    assert "no_mem_embed" in message and "SAM2" in message


def test_load_integer_weights_blames_the_dtype(checkpoints: CheckpointFactory, tmp_path: Path) -> None:
    """A safetensors file whose weights are integers: the dtype is named, not the (identical) shapes."""
    from safetensors.torch import save_file

    folder = _clone(checkpoints(weight_format="safetensors"), tmp_path / "glus")
    state: dict[str, torch.Tensor] = {}
    for shard in weight_files(folder):
        state.update((name, tensor.to(torch.int32)) for name, tensor in iter_tensors(shard))
        shard.unlink()
    for index in folder.glob("*.index.json"):
        index.unlink()
    save_file(state, str(folder / "model.safetensors"))
    message = _load_error(folder)
    assert "floating point" in message and "int32" in message, message
    assert "size mismatch" not in message and "shape" not in message, message


def test_load_folder_without_config(checkpoints: CheckpointFactory, tmp_path: Path) -> None:
    folder = _clone(checkpoints(), tmp_path / "glus")
    (folder / "config.json").unlink()
    assert "config.json" in _load_error(folder)


def test_load_config_of_another_model(checkpoints: CheckpointFactory, tmp_path: Path) -> None:
    folder = _clone(checkpoints(), tmp_path / "glus")
    (folder / "config.json").write_text(
        json.dumps({"model_type": "bert", "architectures": ["BertForMaskedLM"], "hidden_size": 64}),
        encoding="utf-8",
    )
    message = _load_error(folder)
    assert "not a GLUS checkpoint config" in message and "bert" in message


def test_load_llava_config_without_glus_fields(checkpoints: CheckpointFactory, tmp_path: Path) -> None:
    folder = _clone(checkpoints(), tmp_path / "glus")
    _edit_config(folder, lambda config: config.pop("out_dim"))
    assert "out_dim" in _load_error(folder)


def test_load_config_not_json(checkpoints: CheckpointFactory, tmp_path: Path) -> None:
    folder = _clone(checkpoints(), tmp_path / "glus")
    (folder / "config.json").write_text("{'model_type': 'llava'", encoding="utf-8")
    assert "config.json" in _load_error(folder)


def test_load_without_tokenizer_model(checkpoints: CheckpointFactory, tmp_path: Path) -> None:
    folder = _clone(checkpoints(), tmp_path / "glus")
    (folder / "tokenizer.model").unlink()
    assert "tokenizer.model" in _load_error(folder)


def test_load_tokenizer_and_config_vocab_disagree(checkpoints: CheckpointFactory, tmp_path: Path) -> None:
    folder = _clone(checkpoints(), tmp_path / "glus")
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    vocab = config["vocab_size"]
    _edit_config(folder, lambda c: c.update(vocab_size=vocab + 3))
    message = _load_error(folder)
    assert str(vocab) in message and str(vocab + 3) in message and "vocab_size" in message


def test_load_sam2_width_differs_from_out_dim(checkpoints: CheckpointFactory, tmp_path: Path) -> None:
    """The tiny SAM2 is 32 wide: a [SEG] head of another width cannot prompt it."""
    folder = _clone(checkpoints(), tmp_path / "glus")
    _edit_config(folder, lambda config: config.update(out_dim=48))
    message = _load_error(folder)
    assert "width 32" in message and "out_dim" in message and "48" in message


def test_load_sam2_config_of_another_width(tiny_checkpoint: SyntheticCheckpoint) -> None:
    """SAM2-T (256 wide) asked for over a checkpoint whose [SEG] head is 32 wide."""
    message = _load_error(tiny_checkpoint.path, sam2_config="sam2_hiera_t.yaml")
    assert "sam2_hiera_t.yaml" in message and "256" in message and "32" in message


def test_load_unknown_sam2_config(tiny_checkpoint: SyntheticCheckpoint) -> None:
    assert "no_such_sam2.yaml" in _load_error(tiny_checkpoint.path, sam2_config="no_such_sam2.yaml")


def test_load_bad_options(tiny_checkpoint: SyntheticCheckpoint) -> None:
    with pytest.raises(InputError, match="fuser_gamma"):
        load_glus(tiny_checkpoint.path, device="cpu", fuser_gamma="zero")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="quantization"):
        load_glus(tiny_checkpoint.path, device="cpu", quantize="2bit")  # type: ignore[arg-type]


# --- the fuser-gamma switch -------------------------------------------------------------------------

GAMMA_KEYS = [f"memory_encoder.fuser.layers.{i}.gamma" for i in range(2)]


@pytest.fixture(scope="module")
def trained_gamma_checkpoint(
    tmp_path_factory: pytest.TempPathFactory, checkpoints: CheckpointFactory
) -> Path:
    """The tiny checkpoint with fuser gammas unlike SAM2's 1e-6 init (as in the released files)."""
    folder = _clone(checkpoints(), tmp_path_factory.mktemp("gamma") / "glus")

    def set_gammas(state: dict[str, torch.Tensor]) -> None:
        for i, key in enumerate(GAMMA_KEYS):
            old = state[f"model.visual_model.{key}"]
            state[f"model.visual_model.{key}"] = torch.linspace(0.1, 0.9 + i, old.numel()).to(torch.bfloat16)

    _rewrite_weights(folder, set_gammas)
    return folder


def test_fuser_gamma_default_keeps_the_checkpoint(
    trained_gamma_checkpoint: Path, models: ModelFactory
) -> None:
    stored = read_checkpoint(trained_gamma_checkpoint).sam2
    fuser = models(trained_gamma_checkpoint).segmenter.sam2.memory_encoder.fuser
    for i, key in enumerate(GAMMA_KEYS):
        assert torch.equal(fuser.layers[i].gamma.detach(), stored[key].float())
        assert fuser.layers[i].gamma.min() > 0.09


def test_fuser_gamma_official_eval(trained_gamma_checkpoint: Path, models: ModelFactory) -> None:
    """`official-eval` reproduces inference_iter.py: both gammas at bf16(1e-6), everything else as stored."""
    official = models(trained_gamma_checkpoint, fuser_gamma="official-eval")
    default = models(trained_gamma_checkpoint)
    assert official.info.fuser_gamma == "official-eval" and default.info.fuser_gamma == "checkpoint"
    fuser = official.segmenter.sam2.memory_encoder.fuser
    for block in fuser.layers:
        assert block.gamma.dtype == torch.float32
        assert block.gamma.shape == (32,)
        assert torch.all(block.gamma == BF16_1E_6)
    official_state = official.segmenter.sam2.state_dict()
    default_state = default.segmenter.sam2.state_dict()
    for key, value in default_state.items():
        if key in GAMMA_KEYS:
            assert not torch.equal(value, official_state[key])
        else:
            assert torch.equal(value, official_state[key]), key
    assert float(torch.tensor(1e-6, dtype=torch.bfloat16)) == BF16_1E_6
