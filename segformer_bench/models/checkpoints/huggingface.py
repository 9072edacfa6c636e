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
    try:
        config = json.loads(config_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{config_path}: not valid JSON ({e})") from None
    if config.get("model_type") not in (None, "segformer"):
        raise CheckpointError(f"{config_path}: model_type is {config['model_type']!r}, not 'segformer'")
    state: dict[str, torch.Tensor] = {}
    for index_name, reader in (("model.safetensors.index.json", "st"), ("pytorch_model.bin.index.json", "pt")):
        if (path / index_name).is_file():
            shards = sorted(set(json.loads((path / index_name).read_text())["weight_map"].values()))
            for shard in shards:
                state.update(safetensors_load(path / shard)[0] if reader == "st" else torch_load(path / shard))
            return state, config
    if (path / "model.safetensors").is_file():
        return safetensors_load(path / "model.safetensors")[0], config
    if (path / "pytorch_model.bin").is_file():
        loaded = torch_load(path / "pytorch_model.bin")
        if not isinstance(loaded, Mapping):
            raise CheckpointError(f"{path / 'pytorch_model.bin'}: expected a state dict")
        return dict(loaded), config
    raise CheckpointError(f"{path}: no model.safetensors or pytorch_model.bin next to config.json")


def hf_to_ours(state: Mapping[str, torch.Tensor], fmt: str) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Rename a ``huggingface`` or ``transformers5`` state dict into ours; returns (renamed, unmatched keys)."""
    # A bare SegformerModel is saved without the "segformer." prefix.
    state = {(k if k.startswith(("segformer.", "decode_head.", "classifier.")) else "segformer." + k): v
             for k, v in state.items()}
    tables = (HF_PREFIXES, HF_LEAVES) if fmt == "huggingface" else (HF5_PREFIXES, HF5_LEAVES)
    return to_ours(state, *tables)


def config_from_hf(hf: dict) -> dict:
    """Our SegFormerConfig fields from a transformers config.json: those the tensors' shapes do not show."""

    def pick(key: str, default):
        return hf.get(key, default)

    mlp = pick("mlp_ratios", [4, 4, 4, 4])
    if len(set(mlp)) != 1:
        raise CheckpointError(f"config.json: per-stage mlp_ratios {mlp} differ; the released models use 4 everywhere")
    return {
        "num_heads": pick("num_attention_heads", [1, 2, 5, 8]),
        "sr_ratios": pick("sr_ratios", [8, 4, 2, 1]),
        "patch_sizes": pick("patch_sizes", [7, 3, 3, 3]),
        "strides": pick("strides", [4, 2, 2, 2]),
        "in_chans": pick("num_channels", 3),
        "mlp_ratio": mlp[0],
        "drop_path_rate": pick("drop_path_rate", 0.1),
        "head_dropout": pick("classifier_dropout_prob", 0.1),
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
