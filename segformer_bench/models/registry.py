"""The model families, in one table: which variants exist, how each is built, configured and initialised.

``FAMILIES`` is a dict literal of frozen :class:`Family` rows; ``build_model``, ``variant_name``,
``variant_of``, ``config_from_dict`` and ``load_pretrained`` look a name, a config or a model up in it. The
family files (``segformer.py``, ``deeplab.py``) know nothing of each other nor of this table; a new family is
one file implementing ``base.SegmentationModel`` plus one row here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import UserError
from .base import SegmentationModel
from .checkpoints.pretrained import init_deeplab_encoder, init_segformer_encoder
from .deeplab import (
    DEEPLAB_VARIANTS,
    DeepLabConfig,
    DeepLabV3Plus,
    build_deeplab,
    deeplab_variant_name,
    deeplab_variant_of,
)
from .segformer import (
    VARIANTS,
    SegFormer,
    SegFormerConfig,
    build_segformer,
    segformer_variant_name,
    segformer_variant_of,
)


@dataclass(frozen=True)
class Family:
    """One model family: its class, its variants, and the functions that build and initialise it."""

    name: str  # the model's ``family``; also the ``arch`` a saved config records (a SegFormer's records none)
    model: type[SegmentationModel]  # the nn.Module class that runs
    config: type  # its architecture dataclass
    variants: Mapping[str, Any]  # canonical variant name → its architecture (a config)
    listed_as: str  # how the error for an unknown variant names the family
    canonical: Callable[[str], str | None]  # a spelling of a variant name → its key, None if not this family's
    variant_of: Callable[[Any], str | None]  # a config → the variant it has, None for a custom one
    build: Callable[..., SegmentationModel]  # (variant, num_classes, **config overrides) → a fresh model
    config_from_dict: Callable[[Mapping[str, Any]], Any]  # config.to_dict() → config
    load_pretrained: Callable[[Any, str, Callable[[str], None]], None]  # (model, path, log): start its encoder


FAMILIES: dict[str, Family] = {
    "segformer": Family(
        name="segformer", model=SegFormer, config=SegFormerConfig, variants=VARIANTS, listed_as="SegFormer",
        canonical=segformer_variant_name, variant_of=segformer_variant_of, build=build_segformer,
        config_from_dict=SegFormerConfig.from_dict, load_pretrained=init_segformer_encoder,
    ),
    "deeplabv3plus": Family(
        name="deeplabv3plus", model=DeepLabV3Plus, config=DeepLabConfig, variants=DEEPLAB_VARIANTS,
        listed_as="the DeepLabV3+ baseline", canonical=deeplab_variant_name, variant_of=deeplab_variant_of,
        build=build_deeplab, config_from_dict=DeepLabConfig.from_dict, load_pretrained=init_deeplab_encoder,
    ),
}


def family_of(variant: str) -> Family:
    """The family of a variant name in any accepted spelling ('b0', 'mit-b0', 'DeepLabV3+_R101'…)."""
    for family in FAMILIES.values():
        if family.canonical(variant) is not None:
            return family
    choices = " or ".join(f"{', '.join(f.variants)} ({f.listed_as})" for f in FAMILIES.values())
    raise UserError(f"unknown model variant {variant!r}: choose one of {choices}")


def variant_name(name: str) -> str:
    """Canonical variant key for 'b0', 'B0', 'mit-b0', 'mit_b0', 'segformer-b0' and the like, or the
    DeepLabV3+ baseline's ('deeplabv3plus-r50', 'DeepLabV3+_R101'…)."""
    return family_of(name).canonical(name)


def variant_of(config: Any) -> str | None:
    """The variant whose architecture `config` has (classes aside for DeepLabV3+, widths for SegFormer), or
    None for a custom architecture."""
    for family in FAMILIES.values():
        if isinstance(config, family.config):
            return family.variant_of(config)
    raise TypeError(f"variant_of: {type(config).__name__} is no model family's config")


def build_model(variant: str, num_classes: int, **overrides: object) -> SegmentationModel:
    """A freshly initialised model of `variant` for `num_classes` classes: a SegFormer ('b0'…'b5') or the
    DeepLabV3+ baseline ('deeplabv3plus-r50', 'deeplabv3plus-r101'). `overrides` replace other fields of the
    family's config, e.g. ``ffn="plain", pos_embed="learned"`` (SegFormer) or ``output_stride=16`` (DeepLabV3+):
    one entry point for every model the benchmark trains or evaluates.
    """
    family = family_of(variant)
    return family.build(family.canonical(variant), num_classes, **overrides)


def config_from_dict(data: Mapping[str, Any]) -> Any:
    """The config a checkpoint or the store recorded (``config.to_dict()``), in its family's dataclass."""
    arch = data.get("arch", "segformer")  # SegFormer configs are saved without an arch
    if arch not in FAMILIES:
        raise UserError(f"unknown model arch {arch!r} in a saved config: choose one of {', '.join(FAMILIES)}")
    return FAMILIES[arch].config_from_dict({k: v for k, v in data.items() if k != "arch"})


def load_pretrained(model: SegmentationModel, path: str, log: Callable[[str], None]) -> None:
    """Start `model`'s encoder from the pretrained file `path` by its family's rule (``checkpoints/pretrained.py``:
    a SegFormer takes whichever encoder tensors of any readable layout fit, a DeepLabV3+ a complete torchvision
    ResNet); the head keeps its fresh initialisation."""
    FAMILIES[model.family].load_pretrained(model, path, log)
