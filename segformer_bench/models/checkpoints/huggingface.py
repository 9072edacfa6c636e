"""HuggingFace checkpoints: transformers' SegFormer directories, read and written.

A directory holds ``config.json`` and ``model.safetensors`` or ``pytorch_model.bin`` (either may be sharded
with an ``*.index.json``), in transformers' on-disk names (``huggingface`` in ``layouts.py``); a state dict
saved from a transformers-5 model in memory has that version's names (``transformers5``). ``config.json``
supplies what the tensors' shapes cannot show (heads, reduction ratios, strides, dropout rates).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

import torch

from ...data.labels import CITYSCAPES_CLASSES
from ...errors import CheckpointError, UserError
from ..segformer import SegFormer, SegFormerConfig
from .files import safetensors_load, torch_load
from .layouts import HF5_LEAVES, HF5_PREFIXES, HF_LEAVES, HF_PREFIXES, from_ours, to_ours


def read_hf_dir(path: Path) -> tuple[dict[str, torch.Tensor], dict]:
    """(tensors in transformers' names, config.json) of a HuggingFace checkpoint directory, sharded or not."""
    config_path = path / "config.json"
    if not config_path.is_file():
        raise CheckpointError(f"{path}: a checkpoint directory needs config.json (HuggingFace layout)")
    config = _read_json_object(config_path, "the model's config")
    if config.get("model_type") not in (None, "segformer"):
        raise CheckpointError(f"{config_path}: model_type is {config['model_type']!r}, not 'segformer'")
    state: dict[str, torch.Tensor] = {}
    for index_name, reader in (("model.safetensors.index.json", "st"), ("pytorch_model.bin.index.json", "pt")):
        if (path / index_name).is_file():
            for shard in _shards(path / index_name):
                state.update(safetensors_load(path / shard)[0] if reader == "st" else _torch_state(path / shard))
            return state, config
    if (path / "model.safetensors").is_file():
        return safetensors_load(path / "model.safetensors")[0], config
    if (path / "pytorch_model.bin").is_file():
        return _torch_state(path / "pytorch_model.bin"), config
    raise CheckpointError(f"{path}: no model.safetensors or pytorch_model.bin next to config.json")


def _read_json_object(path: Path, what: str) -> dict:
    """The JSON object in `path` (`what` it holds, for the message); anything else is a CheckpointError."""
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path}: not valid JSON ({e}); download the checkpoint directory again") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: holds a JSON {type(data).__name__}, not an object of {what}; download the "
                              "checkpoint directory again")
    return data


def _shards(index: Path) -> list[str]:
    """The shard files an ``*.index.json`` names: plain file names in its own directory, never a path."""
    weight_map = _read_json_object(index, "shard names").get("weight_map")
    if not isinstance(weight_map, dict) or not weight_map:
        raise CheckpointError(f"{index}: has no 'weight_map' object (tensor name → shard file); download the "
                              "checkpoint directory again")
    shards = sorted({str(v) for v in weight_map.values()})
    for shard in shards:
        if Path(shard).name != shard or shard in ("", ".", ".."):
            raise CheckpointError(f"{index}: shard {shard!r} is not a file name in the checkpoint directory; "
                                  "refusing to read outside it")
        if not (index.parent / shard).is_file():
            raise CheckpointError(f"{index}: names the shard {shard}, which is missing; download it again")
    return shards


def _torch_state(path: Path) -> dict[str, torch.Tensor]:
    loaded = torch_load(path)
    if not isinstance(loaded, Mapping) or not all(isinstance(k, str) for k in loaded):
        raise CheckpointError(f"{path}: expected a state dict (tensor names → tensors), found "
                              f"{type(loaded).__name__}")
    return dict(loaded)


def hf_to_ours(state: Mapping[str, torch.Tensor], fmt: str) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Rename a ``huggingface`` or ``transformers5`` state dict into ours; returns (renamed, unmatched keys)."""
    # A bare SegformerModel is saved without the "segformer." prefix.
    state = {(k if k.startswith(("segformer.", "decode_head.", "classifier.")) else "segformer." + k): v
             for k, v in state.items()}
    tables = (HF_PREFIXES, HF_LEAVES) if fmt == "huggingface" else (HF5_PREFIXES, HF5_LEAVES)
    return to_ours(state, *tables)


def config_from_hf(hf: dict, where: str = "config.json") -> dict:
    """Our SegFormerConfig fields from a transformers config.json (`where`, for messages): those the tensors'
    shapes do not show, each checked for its type and range."""

    def per_stage(key: str, default: list[int]) -> list[int]:
        value = hf.get(key, default)
        if (not isinstance(value, list) or len(value) != 4
                or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in value)):
            raise CheckpointError(f"{where}: {key} must be 4 positive integers (one per stage), got "
                                  f"{str(value)[:80]}; fix config.json or download the checkpoint again")
        return value

    def rate(key: str, default: float) -> float:
        value = hf.get(key, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
            raise CheckpointError(f"{where}: {key} must be a number in [0, 1), got {str(value)[:80]}; fix config.json")
        return value

    channels = hf.get("num_channels", 3)
    if type(channels) is not int or channels < 1:
        raise CheckpointError(f"{where}: num_channels must be a positive integer, got {str(channels)[:80]}; "
                              "fix config.json")
    mlp = per_stage("mlp_ratios", [4, 4, 4, 4])
    if len(set(mlp)) != 1:
        raise CheckpointError(f"{where}: per-stage mlp_ratios {mlp} differ; the released models use 4 everywhere")
    return {
        "num_heads": per_stage("num_attention_heads", [1, 2, 5, 8]),
        "sr_ratios": per_stage("sr_ratios", [8, 4, 2, 1]),
        "patch_sizes": per_stage("patch_sizes", [7, 3, 3, 3]),
        "strides": per_stage("strides", [4, 2, 2, 2]),
        "in_chans": channels,
        "mlp_ratio": mlp[0],
        "drop_path_rate": rate("drop_path_rate", 0.1),
        "head_dropout": rate("classifier_dropout_prob", 0.1),
    }


def export_huggingface(model: SegFormer, out_dir: str | os.PathLike, class_names: list[str] | None = None) -> Path:
    """Write `model` as a transformers ``SegformerForSemanticSegmentation`` directory
    (config.json + model.safetensors in transformers' on-disk names)."""
    from safetensors.torch import save_file

    cfg = model.config
    if not isinstance(cfg, SegFormerConfig):
        raise UserError("only SegFormer models can be exported to transformers; save a DeepLabV3+ with save_model")
    if cfg.ffn != "mix" or cfg.pos_embed != "none":
        raise UserError("transformers' SegFormer has no plain-FFN or positional-embedding variant: "
                        "only ffn='mix', pos_embed='none' models can be exported")
    if class_names is None:
        names = CITYSCAPES_CLASSES if cfg.num_classes == len(CITYSCAPES_CLASSES) else None
        class_names = list(names or (f"class_{k}" for k in range(cfg.num_classes)))
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise UserError(f"{out}: exists and is not a directory")
    out.mkdir(parents=True, exist_ok=True)
    hf_config = {
        "architectures": ["SegformerForSemanticSegmentation"],
        "model_type": "segformer",
        "num_channels": cfg.in_chans,
        "num_encoder_blocks": 4,
        "depths": list(cfg.depths),
        "sr_ratios": list(cfg.sr_ratios),
        "hidden_sizes": list(cfg.embed_dims),
        "patch_sizes": list(cfg.patch_sizes),
        "strides": list(cfg.strides),
        "num_attention_heads": list(cfg.num_heads),
        "mlp_ratios": [cfg.mlp_ratio] * 4,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.0,
        "attention_probs_dropout_prob": 0.0,
        "classifier_dropout_prob": cfg.head_dropout,
        "initializer_range": 0.02,
        "drop_path_rate": cfg.drop_path_rate,
        "layer_norm_eps": 1e-6,
        "decoder_hidden_size": cfg.decoder_dim,
        "reshape_last_stage": True,
        "semantic_loss_ignore_index": 255,
        "id2label": {str(k): n for k, n in enumerate(class_names)},
        "label2id": {n: k for k, n in enumerate(class_names)},
    }
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    hf_state = from_ours(state, HF_PREFIXES, HF_LEAVES, split_kv=True)
    tmp = out / "model.safetensors.tmp"
    save_file(hf_state, str(tmp), metadata={"format": "pt"})
    (out / "config.json.tmp").write_text(json.dumps(hf_config, indent=2))
    os.replace(tmp, out / "model.safetensors")
    os.replace(out / "config.json.tmp", out / "config.json")
    return out
