"""Starting a freshly built model from pretrained weights: its encoder copied from a file, its head left new.

One function per family; each family's row in ``registry.FAMILIES`` names its own, and training calls it
through the registry:

* a SegFormer takes the encoder tensors of any file ``read_checkpoint`` reads (ImageNet ``mit_b*.pth``,
  HuggingFace ``nvidia/mit-b*``, a trained model), as far as they exist on both sides;
* a DeepLabV3+ takes a torchvision ResNet file (or a DeepLabV3+ file of ours) and needs every backbone tensor.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from ...errors import CheckpointError, UserError
from ..deeplab import ARCH as DEEPLAB_ARCH
from ..deeplab import DeepLabV3Plus
from ..segformer import SegFormer
from . import read_checkpoint
from .torchvision import load_encoder_strict


def init_segformer_encoder(model: SegFormer, path: str, log: Callable[[str], None]) -> None:
    """Copy the encoder tensors of `path` (any layout load_model reads) into `model`; shapes must agree.

    Encoder tensors the file lacks (e.g. a learned position embedding) keep their fresh initialisation,
    and file tensors the model lacks (e.g. depthwise convs for a plain-FFN model) are left out; both are logged.
    """
    state, _, fmt = read_checkpoint(path)
    own = model.state_dict()
    encoder = {k: v for k, v in state.items() if k.startswith("encoder.")}
    if not encoder:
        raise UserError(f"{path}: holds no encoder weights to start from")
    misshaped = [f"{k} {tuple(v.shape)} vs {tuple(own[k].shape)}" for k, v in encoder.items()
                 if k in own and own[k].shape != v.shape]
    if misshaped:
        raise UserError(f"{path}: encoder does not fit the model ({len(misshaped)} mis-shaped, e.g. {misshaped[0]}); "
                        "choose the matching variant")
    unused = [k for k in encoder if k not in own]
    fresh = [k for k in own if k.startswith("encoder.") and k not in encoder]
    model.load_state_dict({k: v for k, v in encoder.items() if k in own}, strict=False)
    log(f"initialised the encoder from {path} ({fmt}): {len(encoder) - len(unused)} tensors"
        + (f"; {len(fresh)} freshly initialised ({', '.join(fresh[:3])}…)" if fresh else "")
        + (f"; {len(unused)} unused ({', '.join(unused[:3])}…)" if unused else ""))


def load_torchvision_resnet(model: DeepLabV3Plus, path: str | os.PathLike) -> int:
    """Initialise `model`'s encoder from a torchvision ResNet ImageNet file (a flat state dict, read with
    ``weights_only=True``; its ``fc.*`` classifier is dropped), strictly: every backbone tensor must be
    there with its shape, or a CheckpointError says which is not. Returns the number of tensors copied.

    This package's own DeepLabV3+ files and mmseg's are accepted too (their encoder is copied, the head left alone).
    """
    state, config, fmt = read_checkpoint(path)
    if not (fmt == "torchvision-resnet" or (config or {}).get("arch") == DEEPLAB_ARCH):
        raise CheckpointError(f"{path}: is a {fmt} SegFormer checkpoint, not a torchvision ResNet file")
    return load_encoder_strict(model, state, str(path))


def init_deeplab_encoder(model: DeepLabV3Plus, path: str, log: Callable[[str], None]) -> None:
    """``load_torchvision_resnet``, logged."""
    n = load_torchvision_resnet(model, path)
    log(f"initialised the ResNet-{model.config.depth} encoder from {path}: {n} tensors")
