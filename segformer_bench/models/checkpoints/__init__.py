"""Reading and writing checkpoints in every released layout: the package's one door to weight files.

Formats ``read_checkpoint`` and ``load_model`` recognise, by the module that knows each:

* ``official`` (``layouts.py``): NVlabs training checkpoints ``segformer.b*.*.pth``, ``{'state_dict':
  {backbone.*, decode_head.*}, 'meta': …}``; ``decode_head.conv_seg`` exists there but is never used, and is
  ignored;
* ``imagenet`` (``layouts.py``): the encoder files ``mit_b*.pth`` (official names without ``backbone.``, plus
  a 1000-way ``head.*`` classifier that segmentation drops); the decoder is freshly initialised;
* ``huggingface`` (``huggingface.py``): a directory with ``config.json`` and ``model.safetensors`` /
  ``pytorch_model.bin`` (sharded or not) in transformers' on-disk names, which split ``kv`` into ``key`` and
  ``value``;
* ``transformers5`` (``huggingface.py``): the same tensors under transformers 5's in-memory names
  (``stages.{i}.blocks``, ``q_proj``/``k_proj``/``v_proj``/``o_proj``, ``sequence_reduction``…), as
  ``torch.save(model.state_dict())`` of a transformers-5 model writes them;
* ``segformer-bench`` (``own.py``): this project's own files (``save_model``), which carry their config; a
  config with ``arch: deeplabv3plus`` holds the DeepLabV3+ baseline, one without ``arch`` a SegFormer;
* ``torchvision-resnet`` (``torchvision.py``): a torchvision ResNet-50/101 ImageNet file (flat state dict),
  the encoder of a DeepLabV3+ whose head is freshly initialised;
* ``mmseg-deeplabv3plus`` (``mmseg.py``): mmsegmentation's DeepLabV3+ files (``{'meta', 'state_dict'}`` saved
  by mmcv), with the deep ``ResNetV1c`` stem (``r101-d8``) or torchvision's (``r101b-d8``); their auxiliary
  head is kept unless ``load_model(..., aux_head=False)``.

The layouts are those of the released checkpoints (NVlabs/SegFormer, built on mmseg 0.13) and of
transformers' SegFormer. mmsegmentation ≥ 0.17 re-implemented the decoder (BN+ReLU per stage, c1..c4 order);
its checkpoints cannot be mapped onto the released head and are refused with an explanation.
``pretrained.py`` starts a new model's encoder from such a file (training's ``pretrained``).
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping
from pathlib import Path

import torch

from ...errors import CheckpointError, EncoderOnlyError, UserError
from ..base import SegmentationModel
from ..deeplab import ARCH as DEEPLAB_ARCH
from ..deeplab import DeepLabV3Plus
from ..segformer import SegFormer
from .huggingface import config_from_hf, export_huggingface, hf_to_ours, read_hf_dir
from .layouts import OFFICIAL_LEAVES, OFFICIAL_PREFIXES, export_official, infer_config, to_ours
from .mmseg import FORMAT as MMSEG_FORMAT
from .mmseg import is_mmseg, mmseg_to_ours
from .own import FORMAT_TAG, deeplab_config, read_file, save_model
from .torchvision import checkpoint_filter_fn, is_torchvision_resnet, load_encoder_strict, torchvision_config

__all__ = ["export_huggingface", "export_official", "load_model", "read_checkpoint", "save_model"]


def _detect(state: Mapping[str, object]) -> str:
    """The format of a state dict, told by its key names (a DeepLabV3+ file of ours is told by its config)."""
    keys = list(state)
    if is_torchvision_resnet(state):
        return "torchvision-resnet"
    if is_mmseg(state):
        return MMSEG_FORMAT
    if any(k.startswith("encoder.layer1.") for k in keys):
        raise CheckpointError("a bare DeepLabV3+ state dict: its atrous rates and output stride are not stored in "
                              "the tensors; save the model with save_model, which records its config")
    if any(k.startswith(("decode_head.convs.", "decode_head.fusion_conv.", "backbone.layers.")) for k in keys):
        raise CheckpointError(
            "this is an mmsegmentation (>= 0.17) SegFormer checkpoint: mmseg re-implemented the decoder "
            "(BN+ReLU per stage, c1..c4 order), so its head cannot be mapped onto the released SegFormer head. "
            "Use the official NVlabs checkpoint or a HuggingFace one instead."
        )
    if any(k.startswith("encoder.stages.") for k in keys):
        return FORMAT_TAG
    if any(k.startswith(("backbone.patch_embed", "decode_head.linear_fuse.conv")) for k in keys):
        return "official"
    if any(k.startswith("patch_embed1.") for k in keys):
        return "imagenet"
    if any(re.match(r"^(segformer\.)?encoder\.(patch_embeddings|block)\.", k) for k in keys):
        return "huggingface"
    if any(re.match(r"^(segformer\.)?stages\.\d+\.", k) for k in keys):
        return "transformers5"
    sample = ", ".join(keys[:3]) or "no tensors"
    raise CheckpointError(f"not a SegFormer checkpoint (nor a DeepLabV3+ or torchvision ResNet one) in any known "
                          f"layout (first keys: {sample})")


def read_checkpoint(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict | None, str]:
    """(state dict in our names, config dict or None, detected format) for any supported file or directory."""
    path = Path(path).expanduser()
    hf_config = None
    config = meta = None
    if path.is_dir():
        state, hf_config = read_hf_dir(path)
    elif path.is_file():
        state, config, meta = read_file(path)
    else:
        raise CheckpointError(f"{path}: no such checkpoint file or directory; check the path (a HuggingFace "
                              "checkpoint is the directory holding config.json)")

    fmt = FORMAT_TAG if (config or {}).get("arch") == DEEPLAB_ARCH else _detect(state)
    if fmt == "torchvision-resnet":
        state, unmatched = checkpoint_filter_fn(state), []
    elif fmt == "official":
        state, unmatched = to_ours(state, OFFICIAL_PREFIXES, OFFICIAL_LEAVES)
    elif fmt == "imagenet":
        prefixed = {("backbone." + k): v for k, v in state.items() if not k.startswith("head.")}
        state, unmatched = to_ours(prefixed, OFFICIAL_PREFIXES, OFFICIAL_LEAVES)
    elif fmt in ("huggingface", "transformers5"):
        state, unmatched = hf_to_ours(state, fmt)
    elif fmt == MMSEG_FORMAT:
        (state, config), unmatched = mmseg_to_ours(state, meta, str(path)), []
    else:
        unmatched = []
    if unmatched:
        shown = ", ".join(unmatched[:5]) + (f" and {len(unmatched) - 5} more" if len(unmatched) > 5 else "")
        raise CheckpointError(f"{path}: {fmt} checkpoint has tensors this model does not know: {shown}")
    if config is None and hf_config is not None:
        config = config_from_hf(hf_config, str(path / "config.json"))
    return state, config, fmt


def load_state_strict(model: torch.nn.Module, state: Mapping[str, torch.Tensor], only_prefix: str = "") -> None:
    """Load `state` into `model`, raising one readable error that names missing, unexpected and
    mis-shaped tensors. With `only_prefix`, only the model's tensors under that prefix are required."""
    own = {k: v for k, v in model.state_dict().items() if k.startswith(only_prefix)}
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    misshaped = sorted(f"{k} {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
                       for k in set(own) & set(state) if own[k].shape != state[k].shape)
    if missing or unexpected or misshaped:
        parts = []
        for label, names in (("missing", missing), ("unexpected", unexpected), ("mis-shaped", misshaped)):
            if names:
                parts.append(f"{len(names)} {label} ({', '.join(names[:4])}{', …' if len(names) > 4 else ''})")
        raise CheckpointError("checkpoint does not fit the model: " + "; ".join(parts))
    model.load_state_dict(state, strict=not only_prefix)


def load_model(path: str | os.PathLike, num_classes: int | None = None,
               aux_head: bool | None = None) -> SegmentationModel:
    """A SegFormer or DeepLabV3+ built and loaded from any supported checkpoint (see the module docstring).

    The variant is read from the weights' shapes (a DeepLabV3+ file carries its config). For encoder-only
    files (ImageNet ``mit_b*.pth``, HuggingFace ``nvidia/mit-b*``, a torchvision ResNet) the decoder is freshly
    initialised for `num_classes`. A DeepLabV3+ keeps the auxiliary head its file has (mmseg's files have one);
    `aux_head` False drops it, True asks for one (fresh after an encoder-only file). The model is returned in
    eval mode on the CPU.
    """
    state, known, fmt = read_checkpoint(path)
    if fmt == "torchvision-resnet" or (known or {}).get("arch") == DEEPLAB_ARCH:
        config = (torchvision_config(state, num_classes, str(path)) if known is None
                  else deeplab_config(known, num_classes, str(path)))
        if aux_head is not None and aux_head != config.aux_head:
            if aux_head and fmt != "torchvision-resnet":
                raise CheckpointError(f"{path}: has no auxiliary head to load; omit aux_head, or start a model with "
                                      "one from an encoder-only (torchvision ResNet) file")
            config = dataclasses.replace(config, aux_head=aux_head)
            state = {k: v for k, v in state.items() if not k.startswith("aux_head.")}
        deeplab = DeepLabV3Plus(config)
        if fmt == "torchvision-resnet":
            load_encoder_strict(deeplab, state, str(path))
        else:
            try:
                load_state_strict(deeplab, state)
            except CheckpointError as e:
                raise CheckpointError(f"{path}: {e}") from None
        return deeplab.eval()
    if aux_head:
        raise CheckpointError(f"{path}: aux_head applies to DeepLabV3+ checkpoints; this one holds a SegFormer")
    try:
        config = infer_config(state, known, num_classes)
    except EncoderOnlyError as e:
        raise EncoderOnlyError(f"{path}: {e}") from None
    except UserError as e:  # shapes no SegFormer has, e.g. a config.json with zero heads
        raise CheckpointError(f"{path}: {e}; fix or re-download the checkpoint") from None
    model = SegFormer(config)
    encoder_only = not any(k.startswith("head.") for k in state)
    try:
        load_state_strict(model, state, only_prefix="encoder." if encoder_only else "")
    except CheckpointError as e:
        raise CheckpointError(f"{path}: {e}") from None
    return model.eval()
