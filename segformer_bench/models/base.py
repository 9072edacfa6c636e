"""What a segmentation model offers the rest of the package: the protocol every model family implements.

The engine (inference, evaluation, training), the analyses and the benchmark runner ask a model only for
the members of :class:`SegmentationModel`; none of them looks at which family it is. A new family is one
file with one ``nn.Module`` class that has these members, plus its row in ``registry.FAMILIES``.

Both families here are an encoder (four feature maps) followed by a decoder head; :class:`EncoderDecoder`
holds what they share: preprocessing and the named feature taps. This module is a leaf: it imports torch,
the package's errors and the input statistics, nothing else of the package.
"""

from __future__ import annotations

import dataclasses
import operator
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, ClassVar, Protocol

import torch
from torch import nn

from ..data.labels import IMAGENET_MEAN, IMAGENET_STD
from ..errors import UserError

# The named feature maps every family offers (the ERF analysis reads them): the encoder's four outputs, the
# decoder feature in front of the classifier, and the classifier's logits.
TAPS: tuple[str, ...] = ("stage1", "stage2", "stage3", "stage4", "fused", "logits")


class ModelConfig(Protocol):
    """A family's architecture: a frozen dataclass. ``to_dict`` is what checkpoints and the store record."""

    num_classes: int

    def to_dict(self) -> dict[str, Any]: ...


class SegmentationModel(Protocol):
    """What every model family offers (an ``nn.Module`` with these members).

    ``forward`` is the module's own: (B, 3, H, W) network input → logits (B, K, h, w) at the network's output
    stride (both families here: ceil(H/4) × ceil(W/4)); the engine resizes them to the image.
    """

    family: ClassVar[str]  # the registry key ("segformer", "deeplabv3plus")
    display_name: ClassVar[str]  # how messages name the family ("SegFormer", "DeepLabV3+")
    TAPS: ClassVar[tuple[str, ...]]  # the names ``features`` accepts
    min_train_batch: ClassVar[int]  # the fewest images one training forward pass may hold
    config: ModelConfig
    encoder: nn.Module  # the parameters training treats as the (pretrained) encoder
    head: nn.Module  # the decoder's parameters (a higher learning rate in training)

    @property
    def num_classes(self) -> int: ...

    @property
    def class_names(self) -> tuple[str, ...] | None:
        """The classes' names when the model knows them; None when only the dataset does."""

    @property
    def min_input_side(self) -> int:
        """The smallest image side (pixels) the model accepts."""

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) RGB images on the 0–255 scale (uint8 or float) → the network's input."""

    def forward(self, x: torch.Tensor) -> torch.Tensor: ...

    def features(self, x: torch.Tensor, names: Sequence[str] = TAPS) -> dict[str, torch.Tensor]:
        """The named feature maps (TAPS) for network input `x`, in the order of `names`."""


def normalize(images: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) RGB images on the 0–255 scale (uint8 or float) minus the ImageNet mean, over its std.

    uint8 input becomes float32; float input keeps its dtype.
    """
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"normalize expects (B, 3, H, W) RGB images, got shape {tuple(images.shape)}")
    x = images if images.is_floating_point() else images.float()
    mean = torch.tensor(IMAGENET_MEAN, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x - mean) / std


class EncoderDecoder(nn.Module):
    """The protocol's shared part for a model built as ``head(encoder.forward_features(x))``.

    The encoder's ``forward_features`` returns the four stage outputs; the head's ``fused_features`` maps them
    to the decoder feature in front of its ``classifier``. Subclasses set the class attributes, ``config``,
    ``encoder``, ``head``, ``min_input_side`` and ``forward``. Inputs are normalised with ImageNet's
    statistics, which both families' released weights (SegFormer's, torchvision's ResNets) expect.
    """

    family: ClassVar[str]
    display_name: ClassVar[str]
    TAPS: ClassVar[tuple[str, ...]] = TAPS
    min_train_batch: ClassVar[int] = 1

    @property
    def num_classes(self) -> int:
        return self.config.num_classes

    @property
    def class_names(self) -> tuple[str, ...] | None:
        return None  # the checkpoints carry no class names yet: the dataset's are used

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        return normalize(images)

    def features(self, x: torch.Tensor, names: Sequence[str] = TAPS) -> dict[str, torch.Tensor]:
        """The named feature maps for input `x` (one forward pass, computed only as far as needed): ``stage1``…
        ``stage4`` the encoder's outputs, ``fused`` the head's feature before the classifier, ``logits`` the
        classifier's output on it (no dropout: the eval-mode logits)."""
        unknown = [n for n in names if n not in self.TAPS]
        if unknown:
            raise ValueError(f"unknown feature tap(s) {', '.join(unknown)}: {self.display_name} offers "
                             f"{', '.join(self.TAPS)}")
        stages = self.encoder.forward_features(x)
        out = {f"stage{i + 1}": f for i, f in enumerate(stages)}
        if "fused" in names or "logits" in names:
            out["fused"] = self.head.fused_features(stages)
            if "logits" in names:
                out["logits"] = self.head.classifier(out["fused"])
        return {n: out[n] for n in names}


def reject_unknown(names: Iterable[str], config: type, what: str) -> None:
    """A UserError naming the `names` that are not fields of the dataclass `config`, and the allowed ones.

    `what` says what the names are, e.g. "model option(s)" or "DeepLabConfig field(s)".
    """
    allowed = [f.name for f in dataclasses.fields(config)]
    unknown = sorted(set(names) - set(allowed))
    if unknown:
        raise UserError(f"unknown {what} {', '.join(unknown)}: allowed are {', '.join(allowed)}")


def positive_int(value: object, where: str) -> int:
    """`value` as an int if it is a whole number ≥ 1 (a Python or NumPy integer, not a bool), else a UserError
    naming `where`: a config read from a checkpoint can hold anything, and a zero width or head count would
    otherwise fail deep inside the model."""
    try:
        number = None if isinstance(value, bool) else operator.index(value)
    except TypeError:
        number = None
    if number is None or number < 1:
        raise UserError(f"{where} must hold positive integers, got {value!r}")
    return number


def config_from_dict(config: type, data: Mapping[str, Any], what: str) -> Any:
    """The dataclass `config` from its ``to_dict`` form: lists become tuples, unknown keys are a UserError."""
    reject_unknown(data, config, what)
    return config(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in data.items()})
