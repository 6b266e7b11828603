"""The released GLUS-A layout against the modules glus-cli builds for it (reference §1.2-1.3), no weights.

The LLaMA-7B and the heads are built on the meta device; SAM2-L is built on the CPU (its constructors need
real tensors), which takes a few seconds. The official key list is written out here from the reference,
independently of `glus_cli`: LLaMA, projector and `[SEG]` head keys by rule with their shapes, and the
SAM2-L keys with the structure and shapes §1.3 / §5.2 document.
"""

from __future__ import annotations

import re

import pytest
import torch
from transformers import CLIPVisionConfig, CLIPVisionModel

from glus_cli.model.checkpoint import route_key
from glus_cli.model.config import GlusConfig
from glus_cli.model.glus import GlusModules, build_modules
from glus_cli.model.mllm import VisionProjector

# config.json of the released checkpoints (reference §1.2): the fields written by code plus the LISA-7B ones.
GLUS_A_CONFIG = {
    "_name_or_path": "Swindl/GLUS-A",
    "architectures": ["GLUSForCausalLM"],
    "model_type": "llava",
    "bos_token_id": 1,
    "eos_token_id": 2,
    "pad_token_id": 0,
    "hidden_act": "silu",
    "hidden_size": 4096,
    "intermediate_size": 11008,
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
    "max_position_embeddings": 2048,
    "rms_norm_eps": 1e-6,
    "rope_scaling": None,
    "tie_word_embeddings": False,
    "vocab_size": 32004,
    "mm_hidden_size": 1024,
    "mm_use_im_patch_token": False,
    "mm_use_im_start_end": True,
    "mm_vision_select_feature": "patch",
    "mm_vision_select_layer": -2,
    "mm_vision_tower": "openai/clip-vit-large-patch14",
    "vision_tower": "openai/clip-vit-large-patch14",
    "out_dim": 256,
    "train_mask_decoder": True,
    "use_mm_proj": True,
    "use_cache": False,
    "torch_dtype": "bfloat16",
    "transformers_version": "4.31.0",
}

HIDDEN, INTERMEDIATE, LAYERS, VOCAB = 4096, 11008, 32, 32004
SAM2 = "model.visual_model."

# SAM2-L (sam2_hiera_l.yaml): documented shapes (reference §1.3 and the §5.2 config table).
SAM2_L_SHAPES: dict[str, tuple[int, ...]] = {
    "maskmem_tpos_enc": (7, 1, 1, 64),
    "no_mem_embed": (1, 1, 256),
    "no_mem_pos_enc": (1, 1, 256),
    "no_obj_ptr": (1, 256),
    "sam_prompt_encoder.pe_layer.positional_encoding_gaussian_matrix": (2, 128),
    "sam_prompt_encoder.no_mask_embed.weight": (1, 256),
    "memory_encoder.fuser.layers.0.gamma": (256,),
    "memory_encoder.fuser.layers.1.gamma": (256,),
    "memory_encoder.out_proj.weight": (64, 256, 1, 1),  # memory_encoder out_dim 64
    "image_encoder.trunk.patch_embed.proj.weight": (144, 3, 7, 7),  # Hiera embed_dim 144
    # FpnNeck d_model 256 over backbone_channel_list [1152, 576, 288, 144]
    "image_encoder.neck.convs.0.conv.weight": (256, 1152, 1, 1),
    "image_encoder.neck.convs.1.conv.weight": (256, 576, 1, 1),
    "image_encoder.neck.convs.2.conv.weight": (256, 288, 1, 1),
    "image_encoder.neck.convs.3.conv.weight": (256, 144, 1, 1),
    "sam_mask_decoder.conv_s0.weight": (32, 256, 1, 1),  # level 0 at C/8
    "sam_mask_decoder.conv_s1.weight": (64, 256, 1, 1),  # level 1 at C/4
    "sam_mask_decoder.mask_tokens.weight": (4, 256),
}

# Every SAM2-L key starts with one of these (reference §1.3).
SAM2_L_GROUPS = (
    "image_encoder.trunk.",
    "image_encoder.neck.convs.",
    "memory_attention.layers.",
    "memory_attention.norm.",
    "memory_encoder.mask_downsampler.",
    "memory_encoder.pix_feat_proj.",
    "memory_encoder.fuser.layers.",
    "memory_encoder.out_proj.",
    "sam_prompt_encoder.pe_layer.",
    "sam_prompt_encoder.point_embeddings.",
    "sam_prompt_encoder.not_a_point_embed.",
    "sam_prompt_encoder.mask_downscaling.",
    "sam_prompt_encoder.no_mask_embed.",
    "sam_mask_decoder.",
    "mask_downsample.",
    "obj_ptr_proj.layers.",
)
SAM2_L_TENSORS = ("maskmem_tpos_enc", "no_mem_embed", "no_mem_pos_enc", "no_obj_ptr")


def official_llm_and_head_keys() -> dict[str, tuple[int, ...]]:
    """LLaMA, projector and [SEG] head keys of the released checkpoint, with their shapes (reference §1.3)."""
    keys = {
        "model.embed_tokens.weight": (VOCAB, HIDDEN),
        "model.norm.weight": (HIDDEN,),
        "lm_head.weight": (VOCAB, HIDDEN),
        "model.mm_projector.weight": (HIDDEN, 1024),
        "model.mm_projector.bias": (HIDDEN,),
        "model.text_hidden_fcs.0.0.weight": (HIDDEN, HIDDEN),
        "model.text_hidden_fcs.0.0.bias": (HIDDEN,),
        "model.text_hidden_fcs.0.2.weight": (256, HIDDEN),
        "model.text_hidden_fcs.0.2.bias": (256,),
    }
    for i in range(LAYERS):
        prefix = f"model.layers.{i}."
        for projection in ("q", "k", "v", "o"):
            keys[f"{prefix}self_attn.{projection}_proj.weight"] = (HIDDEN, HIDDEN)
        keys[f"{prefix}mlp.gate_proj.weight"] = (INTERMEDIATE, HIDDEN)
        keys[f"{prefix}mlp.up_proj.weight"] = (INTERMEDIATE, HIDDEN)
        keys[f"{prefix}mlp.down_proj.weight"] = (HIDDEN, INTERMEDIATE)
        keys[f"{prefix}input_layernorm.weight"] = (HIDDEN,)
        keys[f"{prefix}post_attention_layernorm.weight"] = (HIDDEN,)
        keys[f"{prefix}self_attn.rotary_emb.inv_freq"] = (64,)  # saved by 4.31; ignored
    return keys


@pytest.fixture(scope="module")
def glus_a_config() -> GlusConfig:
    return GlusConfig.from_dict(GLUS_A_CONFIG)


@pytest.fixture(scope="module")
def modules(glus_a_config: GlusConfig) -> GlusModules:
    return build_modules(glus_a_config, "sam2_hiera_l.yaml")


def _state_shapes(module: torch.nn.Module) -> dict[str, tuple[int, ...]]:
    """Parameters and persistent buffers (what a checkpoint must provide) with their shapes."""
    return {name: tuple(tensor.shape) for name, tensor in module.state_dict().items()}


def test_config_reads_the_released_values(glus_a_config: GlusConfig) -> None:
    llama = glus_a_config.llama_config()
    assert (llama.hidden_size, llama.intermediate_size) == (HIDDEN, INTERMEDIATE)
    assert (llama.num_hidden_layers, llama.num_attention_heads, llama.num_key_value_heads) == (32, 32, 32)
    assert (llama.vocab_size, llama.rms_norm_eps, llama.max_position_embeddings) == (VOCAB, 1e-6, 2048)
    assert llama.tie_word_embeddings is False
    assert glus_a_config.rope_theta == 10000.0
    assert glus_a_config.out_dim == 256 and glus_a_config.mm_hidden_size == 1024
    assert glus_a_config.mm_vision_select_layer == -2
    assert glus_a_config.vision_tower == "openai/clip-vit-large-patch14"


def test_llm_and_heads_are_on_meta_sam2_on_cpu(modules: GlusModules) -> None:
    assert modules.llm.model.embed_tokens.weight.is_meta
    assert modules.llm.lm_head.weight.is_meta
    assert modules.mm_projector.weight.is_meta
    assert modules.text_hidden_fcs[0][0].weight.is_meta
    assert modules.sam2.no_mem_embed.device.type == "cpu"


def test_sam2_l_structure(modules: GlusModules) -> None:
    """The SAM2-L state dict has exactly the groups, block counts and shapes the reference documents."""
    shapes = _state_shapes(modules.sam2)
    for key, shape in SAM2_L_SHAPES.items():
        assert shapes[key] == shape, key
    for key in shapes:
        assert key in SAM2_L_TENSORS or key.startswith(SAM2_L_GROUPS), key
    for group in SAM2_L_GROUPS:
        assert any(key.startswith(group) for key in shapes), group

    def indices(pattern: str) -> set[int]:
        return {int(m.group(1)) for key in shapes if (m := re.match(pattern, key))}

    assert indices(r"image_encoder\.trunk\.blocks\.(\d+)\.") == set(range(2 + 6 + 36 + 4))  # stages
    assert indices(r"image_encoder\.neck\.convs\.(\d+)\.") == set(range(4))
    assert indices(r"memory_attention\.layers\.(\d+)\.") == set(range(4))
    assert indices(r"memory_encoder\.fuser\.layers\.(\d+)\.") == {0, 1}
    assert indices(r"sam_prompt_encoder\.point_embeddings\.(\d+)\.") == set(range(4))
    fuser_parts = {key.split(".")[4] for key in shapes if key.startswith("memory_encoder.fuser.layers.")}
    assert fuser_parts == {"dwconv", "norm", "pwconv1", "pwconv2", "gamma"}


def test_every_official_key_routes_to_a_module_with_its_shape(modules: GlusModules) -> None:
    official = official_llm_and_head_keys()
    official.update({SAM2 + key: shape for key, shape in _state_shapes(modules.sam2).items()})
    module_shapes = {
        "llm": _state_shapes(modules.llm),
        "mm_projector": _state_shapes(modules.mm_projector),
        "text_hidden_fcs": _state_shapes(modules.text_hidden_fcs),
        "sam2": _state_shapes(modules.sam2),
    }
    covered: dict[str, set[str]] = {name: set() for name in module_shapes}
    ignored = []
    for key, shape in official.items():
        routed = route_key(key)
        if routed is None:
            ignored.append(key)
            continue
        module, local = routed
        assert module_shapes[module].get(local) == shape, key
        covered[module].add(local)
    assert sorted(ignored) == sorted(f"model.layers.{i}.self_attn.rotary_emb.inv_freq" for i in range(LAYERS))
    # Every parameter and persistent buffer is filled by an official key: nothing left to chance.
    for module, shapes in module_shapes.items():
        assert covered[module] == set(shapes), module
    assert len(module_shapes["llm"]) == 3 + 9 * LAYERS
    assert len(module_shapes["mm_projector"]) == 2 and len(module_shapes["text_hidden_fcs"]) == 4


def test_modules_have_no_parameters_outside_the_state_dict(modules: GlusModules) -> None:
    for module in (modules.llm, modules.mm_projector, modules.text_hidden_fcs, modules.sam2):
        assert {name for name, _ in module.named_parameters()} <= set(module.state_dict())


def test_llm_rotary_table_is_real_fp32(modules: GlusModules) -> None:
    """The RoPE table is computed in fp32 at build (not a meta buffer, not from the checkpoint's inv_freq)."""
    rotary = modules.llm.model.rotary_emb
    assert not rotary.cos_table.is_meta and rotary.cos_table.dtype == torch.float32
    assert tuple(rotary.cos_table.shape) == (2048, HIDDEN // 32)
    assert "rotary" not in " ".join(modules.llm.state_dict())


def test_clip_vit_l14_tower_and_projector_shapes(modules: GlusModules) -> None:
    """openai/clip-vit-large-patch14 on the meta device: 24 layers, 1024 wide, 256 patches + CLS, layer -2."""
    config = CLIPVisionConfig(
        hidden_size=1024,
        intermediate_size=4096,
        num_hidden_layers=24,
        num_attention_heads=16,
        image_size=224,
        patch_size=14,
        projection_dim=768,
    )
    with torch.device("meta"):
        tower = CLIPVisionModel(config)
    # transformers 5 drops the `vision_model.` key prefix that 4.31 used; accept both.
    shapes = {re.sub(r"^vision_model\.", "", key): shape for key, shape in _state_shapes(tower).items()}
    assert shapes["embeddings.position_embedding.weight"] == (256 + 1, 1024)
    assert shapes["embeddings.patch_embedding.weight"] == (1024, 3, 14, 14)
    assert shapes["embeddings.class_embedding"] == (1024,)
    layers = {int(m.group(1)) for key in shapes if (m := re.match(r"encoder\.layers\.(\d+)\.", key))}
    assert layers == set(range(24))
    pixels = torch.empty(1, 3, 224, 224, device="meta")
    hidden_states = tower(pixels, output_hidden_states=True).hidden_states
    assert len(hidden_states) == 24 + 1  # embeddings, then each layer: -2 is the penultimate layer's output
    assert tuple(hidden_states[-2].shape) == (1, 257, 1024)
    # CLIP -> drop CLS -> pool by 4 -> mm_projector: 64 LLM-width tokens per image.
    projector = VisionProjector(tower, modules.mm_projector, select_layer=-2)
    assert tuple(projector(pixels).shape) == (1, 64, HIDDEN)
