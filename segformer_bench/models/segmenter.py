"""One interface to any segmentation model: :class:`Segmenter`, what every analysis runs.

A Segmenter wraps a model of any family (this package's SegFormer and DeepLabV3+, a transformers directory, a
user's factory, mmsegmentation) behind the same few members:

* ``seg(x)``: float (B, 3, H, W) RGB images on the 0–1 scale → float32 logits (B, K, H, W) at the input size.
  It applies the model's own preprocessing (``preprocess``: channel order, mean/std), resizes the network's
  input up to the model's size divisor and runs the network (``network``), and resizes the logits back to the
  input bilinearly (align_corners=False) — every step differentiable, so attacks and ERFs take gradients
  through it;
* ``preprocess(x, scale=1.0)`` and ``network(xn)``: the two halves, which the evaluation engine runs apart
  (it resizes and slides windows over the *preprocessed* image, as mmseg does); ``scale`` states the input's
  scale (the engine passes uint8-valued images with ``scale=255``, so that this package's own models see
  exactly the arithmetic they always have);
* ``compiled_network()``: ``network`` through ``torch.compile``, built once per model object and kept (the
  evaluation's ``compile`` setting);
* ``features(x, taps)`` / ``network_features(xn, taps)``: named feature maps (B, C, h, w) for the ERF analysis;
  ``taps`` lists the names a model offers (``logits`` always);
* ``name``, ``family``, ``display_name``, ``num_classes``, ``class_names`` (or None), ``module`` (the wrapped
  ``nn.Module``), ``min_input_side``, ``outputs`` ("logits": softmax gives class probabilities; "scores": the
  logarithm of a universal model's per-class scores, which are not a probability distribution — calibration
  leaves them out) and ``describe()`` (what the results store records about the model).

A ``class_map`` (model class → dataset class, or dropped) turns a model's classes into the dataset's: each
dataset class's logit is the log-sum-exp of the logits of the model classes mapped to it (so its softmax
probability is their summed probability); dropped model classes leave the softmax; a dataset class no model
class maps to gets a constant logit of −10⁴, so it is never predicted.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from ..config import ConfigError

Outputs = Literal["logits", "scores"]
UNMAPPED_LOGIT = -1e4  # a dataset class no model class maps to: finite (bilinear resizing stays NaN-free)


@dataclass(frozen=True)
class Preprocess:
    """How a model wants its input: (x · scale_ratio, channel order, − mean) / std, then sides up to a multiple."""

    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    scale: float = 1.0  # the image scale mean and std are stated on: 1 (images on 0–1) or 255 (on 0–255)
    channels: Literal["RGB", "BGR"] = "RGB"  # the order the network wants
    size_divisor: int = 1  # the network input's sides are resized up to multiples of this (1: any size)

    def __post_init__(self) -> None:
        for name in ("mean", "std"):
            value = getattr(self, name)
            if (not isinstance(value, (tuple, list)) or len(value) != 3
                    or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                               for v in value)):
                raise ConfigError(f"preprocess.{name} must be three finite numbers (R, G, B), got {value!r}")
            object.__setattr__(self, name, tuple(float(v) for v in value))
        if any(s <= 0 for s in self.std):
            raise ConfigError(f"preprocess.std must be positive, got {list(self.std)}")
        if self.scale not in (1, 255) or isinstance(self.scale, bool):
            raise ConfigError(f"preprocess.scale must be 1 (mean/std on 0–1 images) or 255 (on 0–255), "
                              f"got {self.scale!r}")
        if self.channels not in ("RGB", "BGR"):
            raise ConfigError(f"preprocess.channels must be RGB or BGR, got {self.channels!r}")
        if type(self.size_divisor) is not int or self.size_divisor < 1:
            raise ConfigError(f"preprocess.size_divisor must be a whole number ≥ 1, got {self.size_divisor!r}")

    def apply(self, images: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
        """(B, 3, H, W) RGB images on the 0–`scale` scale (uint8 is read as float) → the network's input."""
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"expected (B, 3, H, W) RGB images, got shape {tuple(images.shape)}")
        x = images if images.is_floating_point() else images.float()
        if scale != self.scale:
            x = x * (self.scale / scale)
        if self.channels == "BGR":
            x = x.flip(1)
        mean = torch.tensor(self.mean, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
        std = torch.tensor(self.std, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
        return (x - mean) / std

    def divisible(self, size: tuple[int, int]) -> tuple[int, int]:
        """`size` (H, W) with each side rounded up to a multiple of ``size_divisor``."""
        d = self.size_divisor
        return -(-size[0] // d) * d, -(-size[1] // d) * d


class ClassMap(nn.Module):
    """Model logits (B, K_model, h, w) → dataset logits (B, K_dataset, h, w) by log-sum-exp (module docstring)."""

    def __init__(self, targets: Sequence[int | None], num_classes: int) -> None:
        super().__init__()
        self.targets = tuple(targets)  # per model class: its dataset class, or None (dropped)
        self.num_classes = num_classes
        self.groups = [[m for m, d in enumerate(self.targets) if d == k] for k in range(num_classes)]

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        if logits.shape[1] != len(self.targets):
            raise ValueError(f"class_map: model gives {logits.shape[1]} classes, the map has {len(self.targets)}")
        if all(len(g) == 1 for g in self.groups):  # a permutation or a subset: select (exact)
            return logits[:, [g[0] for g in self.groups]]
        channels = []
        for group in self.groups:
            if group:
                channels.append(logits[:, group].logsumexp(dim=1) if len(group) > 1 else logits[:, group[0]])
            else:
                channels.append(torch.full_like(logits[:, 0], UNMAPPED_LOGIT))
        return torch.stack(channels, dim=1)


def resolve_class_map(class_map: Mapping[Any, Any], model_classes: int, model_names: Sequence[str] | None,
                      num_classes: int, dataset_names: Sequence[str] | None, where: str) -> ClassMap:
    """A ClassMap from a suite's ``class_map`` (model class → dataset class or null; each side an index or a
    name). Model classes the map does not list are dropped."""
    def index(key: Any, count: int, names: Sequence[str] | None, side: str) -> int:
        if isinstance(key, bool):
            pass
        elif isinstance(key, int) or (isinstance(key, str) and key.isdigit()):
            if 0 <= int(key) < count:
                return int(key)
        elif isinstance(key, str) and names is not None and key in names:
            return list(names).index(key)
        known = f"names such as {', '.join(list(names)[:4])}…" if names else "no class names"
        raise ConfigError(f"{where}: {key!r} is not a {side} class (indices 0–{count - 1}, {known})")

    if not isinstance(class_map, Mapping) or not class_map:
        raise ConfigError(f"{where} must be a mapping of model class → dataset class (or null to drop it)")
    targets: list[int | None] = [None] * model_classes
    for key, value in class_map.items():
        source = index(key, model_classes, model_names, "model")
        targets[source] = None if value is None or value == "ignore" else index(value, num_classes, dataset_names,
                                                                                 "dataset")
    if all(t is None for t in targets):
        raise ConfigError(f"{where} drops every model class; map at least one to a dataset class")
    return ClassMap(targets, num_classes)


class Segmenter(nn.Module):
    """A segmentation model of any family behind one interface (module docstring).

    Subclasses implement ``logits`` (network input → the model's raw per-class output, any resolution) and
    ``tap_features`` (network input, already divisible → the named feature maps); everything else is shared.
    """

    def __init__(self, module: nn.Module, *, name: str, family: str, display_name: str, num_classes: int,
                 preprocess: Preprocess, taps: Sequence[str], class_names: Sequence[str] | None = None,
                 min_input_side: int = 1, outputs: Outputs = "logits", description: Mapping[str, Any] | None = None,
                 class_map: ClassMap | None = None) -> None:
        super().__init__()
        self.module = module
        self.name = name
        self.family = family
        self.display_name = display_name
        self.preprocessing = preprocess
        self.taps = tuple(taps) if "logits" in taps else (*taps, "logits")
        self.min_input_side = min_input_side
        self.outputs = outputs
        self.class_map = class_map
        self.model_classes = num_classes
        self.model_class_names = tuple(class_names) if class_names is not None else None
        self._description = dict(description or {})
        self._compiled: dict[str | None, Callable[[torch.Tensor], torch.Tensor]] = {}  # by torch.compile mode
        # network inputs (one image or window each) run at each input (h, w) under ``compile: auto``, which it
        # weighs against the compile's cost (engine.inference.decide_compile)
        self.passes: dict[tuple[int, int], int] = {}
        self.train(module.training)  # as the wrapped module is (callers restore the mode they found)

    # -- what a model is ------------------------------------------------------------------------------------

    @property
    def num_classes(self) -> int:
        return self.class_map.num_classes if self.class_map is not None else self.model_classes

    @property
    def class_names(self) -> tuple[str, ...] | None:
        return None if self.class_map is not None else self.model_class_names

    def describe(self) -> dict[str, Any]:
        """What the results store records about the model (its family and architecture or source)."""
        return {"family": self.family, **self._description,
                **({"class_map": list(self.class_map.targets)} if self.class_map is not None else {})}

    def with_class_map(self, class_map: ClassMap) -> Segmenter:
        if len(class_map.targets) != self.model_classes:
            raise ConfigError(f"class_map has {len(class_map.targets)} model classes, {self.name} has "
                              f"{self.model_classes}")
        self.class_map = class_map
        self._compiled.clear()  # compiled with the old map
        return self

    # -- running it -----------------------------------------------------------------------------------------

    def preprocess(self, images: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
        """RGB images on the 0–`scale` scale → the network's input (differentiable)."""
        return self.preprocessing.apply(images, scale)

    def network(self, x: torch.Tensor) -> torch.Tensor:
        """Network input (B, 3, H, W) → float32 logits (B, K, h, w) at the network's output resolution (the input
        resized up to the size divisor first, when the model has one)."""
        size = tuple(x.shape[-2:])
        target = self.preprocessing.divisible(size)
        if target != size:
            x = F.interpolate(x, size=target, mode="bilinear", align_corners=False)
        out = self.logits(x).float()
        return self.class_map(out) if self.class_map is not None else out

    def forward(self, images: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
        """RGB images (B, 3, H, W) on the 0–`scale` scale → float32 logits (B, K, H, W) at the input size."""
        out = self.network(self.preprocess(images, scale))
        if out.shape[-2:] != images.shape[-2:]:
            out = F.interpolate(out, size=images.shape[-2:], mode="bilinear", align_corners=False)
        return out

    def compiled_network(self, mode: str | None = None) -> Callable[[torch.Tensor], torch.Tensor]:
        """``network`` through ``torch.compile`` (inductor, `mode`, ``dynamic=False``), built on first use and kept
        on this object: every later batch, cell, test and analysis that runs this model reuses it; another model
        object compiles its own. torch itself recompiles it once per new input shape, grad mode or autocast
        state (a sliding window has one shape)."""
        if mode not in self._compiled:
            compiled = torch.compile(self.network, mode=mode, dynamic=False)

            def run(x: torch.Tensor) -> torch.Tensor:
                with warnings.catch_warnings():
                    # tracing an attack's input (a non-leaf tensor that requires grad), Dynamo reads its .grad,
                    # and torch warns about the read; the warning is about torch's internals, not the caller's code
                    warnings.filterwarnings("ignore", "The .grad attribute of a Tensor that is not a leaf",
                                            UserWarning)
                    return compiled(x)

            self._compiled[mode] = run
        return self._compiled[mode]

    def features(self, images: torch.Tensor, taps: Sequence[str] | None = None,
                 scale: float = 1.0) -> dict[str, torch.Tensor]:
        """The named feature maps of RGB images on the 0–`scale` scale, in the order of `taps` (default all)."""
        return self.network_features(self.preprocess(images, scale), taps)

    def network_features(self, x: torch.Tensor, taps: Sequence[str] | None = None) -> dict[str, torch.Tensor]:
        """The named feature maps (B, C, h, w) for network input `x` (resized up to the size divisor first, as
        ``network`` does), in the order of `taps`."""
        names = tuple(self.taps if taps is None else taps)
        unknown = [n for n in names if n not in self.taps]
        if unknown:
            raise ConfigError(f"unknown feature tap(s) {', '.join(unknown)}: {self.name} offers "
                              f"{', '.join(self.taps)}")
        size = tuple(x.shape[-2:])
        target = self.preprocessing.divisible(size)
        if target != size:
            x = F.interpolate(x, size=target, mode="bilinear", align_corners=False)
        out = self.tap_features(x, names)
        if "logits" in names and "logits" not in out:
            out["logits"] = self.network(x)
        return {n: out[n] for n in names}

    # -- what a family implements ---------------------------------------------------------------------------

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def tap_features(self, x: torch.Tensor, names: Sequence[str]) -> dict[str, torch.Tensor]:
        raise NotImplementedError


class BuiltinSegmenter(Segmenter):
    """This package's SegFormer or DeepLabV3+ (``models.base.SegmentationModel``): ImageNet mean/std on the 0–255
    scale, RGB, any input size, the protocol's TAPS."""

    def __init__(self, model: nn.Module, name: str = "", class_map: ClassMap | None = None) -> None:
        from ..data.labels import IMAGENET_MEAN, IMAGENET_STD

        super().__init__(model, name=name or model.display_name, family=model.family,
                         display_name=model.display_name, num_classes=model.num_classes,
                         preprocess=Preprocess(IMAGENET_MEAN, IMAGENET_STD, scale=255), taps=model.TAPS,
                         class_names=model.class_names, min_input_side=model.min_input_side,
                         description=model.config.to_dict(), class_map=class_map)

    def describe(self) -> dict[str, Any]:
        # the model's config as this package has always stored it (family implied by its ``arch`` field)
        return {k: v for k, v in super().describe().items() if k != "family"}

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.module(x)

    def tap_features(self, x: torch.Tensor, names: Sequence[str]) -> dict[str, torch.Tensor]:
        if self.class_map is not None and "logits" in names:
            names = [n for n in names if n != "logits"]  # mapped by ``network``
        return self.module.features(x, names)


def as_segmenter(model: nn.Module, name: str = "") -> Segmenter:
    """`model` itself if it is a Segmenter, else this package's model wrapped."""
    return model if isinstance(model, Segmenter) else BuiltinSegmenter(model, name)
