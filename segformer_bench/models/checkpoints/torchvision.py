"""torchvision ResNet files: the ImageNet weights a DeepLabV3+ encoder starts from.

A torchvision ``resnet50-*.pth`` / ``resnet101-*.pth`` is a flat state dict in torchvision's names
(``conv1``, ``bn1``, ``layer1.0.conv1``…, the 1000-way ``fc``). ``deeplab.py`` names its encoder's modules
exactly so, so the renaming is one prefix (``checkpoint_filter_fn``, timm's name for such a function) and
the depth is read from the number of blocks per layer.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import torch

from ...errors import CheckpointError, EncoderOnlyError
from ..deeplab import RESNET_BLOCKS, DeepLabConfig, DeepLabV3Plus

TORCHVISION_KEY = re.compile(r"^(conv1\.|bn1\.|layer[1-4]\.\d+\.|fc\.)")


def is_torchvision_resnet(state: Mapping[str, object]) -> bool:
    """Whether a flat state dict is in torchvision's ResNet layout (``conv1.weight``, ``layer1.0.conv1.weight``…)."""
    return "conv1.weight" in state and "layer1.0.conv1.weight" in state and all(map(TORCHVISION_KEY.match, state))


def checkpoint_filter_fn(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A torchvision ResNet state dict in this model's names: ``encoder.`` prefixed, the ImageNet ``fc.*``
    classifier dropped. The names are otherwise torchvision's own."""
    return {"encoder." + k: v for k, v in state.items() if not k.startswith("fc.")}


def resnet_depth_of(state: Mapping[str, torch.Tensor]) -> int | None:
    """The depth (50, 101) whose blocks per layer the ``encoder.layer*`` keys show; None if no known one."""
    blocks = tuple(len({m[1] for k in state if (m := re.match(rf"encoder\.layer{i}\.(\d+)\.", k))})
                   for i in range(1, 5))
    return next((d for d, ref in RESNET_BLOCKS.items() if ref == blocks), None)


def load_encoder_strict(model: DeepLabV3Plus, state: Mapping[str, torch.Tensor], where: str) -> int:
    """Copy the ``encoder.*`` tensors of `state` into `model`, all or nothing; returns how many were copied.

    Every encoder tensor must be there with its shape, except BN's ``num_batches_tracked`` counters, which
    older torchvision files lack (they keep their value). The error names the first problem in model order.
    """
    own = model.state_dict()
    encoder = {k: v for k, v in state.items() if k.startswith("encoder.")}
    wanted = [k for k in own if k.startswith("encoder.")]
    missing = [k for k in wanted if k not in encoder and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in encoder if k not in own]
    misshaped = [f"{k} {tuple(encoder[k].shape)} vs model {tuple(own[k].shape)}"
                 for k in wanted if k in encoder and encoder[k].shape != own[k].shape]
    if missing or unexpected or misshaped:
        depth = resnet_depth_of(encoder)
        found = f"a ResNet-{depth} backbone" if depth else "a backbone of no known depth"
        parts = [f"{len(names)} {label} (first: {names[0]})"
                 for label, names in (("missing", missing), ("unexpected", unexpected), ("mis-shaped", misshaped))
                 if names]
        ours = model.config.depth
        hint = (f"use deeplabv3plus-r{depth}, or a resnet{ours} file" if depth and depth != ours
                else f"use a torchvision resnet{ours} file")
        raise CheckpointError(f"{where}: {found} does not fit the model's ResNet-{ours}: {'; '.join(parts)}; {hint}")
    with torch.no_grad():
        for k, v in encoder.items():
            own[k].copy_(v)
    return len(encoder)


def torchvision_config(state: Mapping[str, torch.Tensor], num_classes: int | None, where: str) -> DeepLabConfig:
    """The DeepLabV3+ a torchvision ResNet file (in our names) starts: its depth, the other fields the defaults,
    and a new head for `num_classes`, which must be given."""
    depth = resnet_depth_of(state)
    if depth is None:
        raise CheckpointError(f"{where}: a ResNet of no supported depth (50 or 101)")
    if num_classes is None:
        raise EncoderOnlyError(f"{where}: encoder-only checkpoint (ImageNet ResNet): pass num_classes for the "
                              "new head")
    return DeepLabConfig(depth=depth, num_classes=num_classes)
