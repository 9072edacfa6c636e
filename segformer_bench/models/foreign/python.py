"""The ``python`` family: any ``nn.Module`` a user's function builds, declared in a few lines of a suite.

::

    - name: DeepLabV3 R50 (torchvision)
      family: python
      factory: torchvision.models.segmentation:deeplabv3_resnet50
      options: {weights: null, weights_backbone: null, num_classes: 19, aux_loss: false}
      checkpoint: ../checkpoints/deeplabv3_r50_city.pth
      preprocess: {mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225], scale: 1}
      output: {key: out}
      taps: {stage1: backbone.layer1, stage4: backbone.layer4, fused: classifier.3}

* ``factory`` is imported (the module must be importable: installed, or on PYTHONPATH) and called with
  ``options`` as keyword arguments; it must return an ``nn.Module``;
* ``checkpoint`` (optional) is a state dict read with ``torch.load(weights_only=True)`` (or a safetensors file);
  ``{"state_dict": ...}`` and ``{"model": ...}`` wrappers are unwrapped; it must fit the module strictly;
* ``preprocess``: ``mean``/``std`` on the ``scale`` they are stated on (1: images on 0–1, 255: on 0–255),
  ``channels`` (RGB or BGR) and ``size_divisor`` (input sides resized up to multiples of it; e.g. 32 for
  segmentation_models_pytorch). Default: no normalisation, RGB, any size;
* ``output``: ``key`` — the logits' dict key (torchvision's ``out``), tuple index, or attribute (``logits``);
  absent: the output itself, or the only tensor of a dict — and ``stride``, the logits' declared output stride
  (1: logits at the input size), checked on the first forward pass;
* ``taps``: ERF taps by module name (``models/foreign/hooks.py``); ``logits`` is always there.

At open time the module runs once on a small zero image (no gradients) to learn its class count and check that
it returns logits: a factory that is missing, raises, or returns no logits is one line naming the entry.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ...config import ConfigError, from_mapping
from ...errors import CheckpointError
from ..entry import ModelEntry
from ..segmenter import Preprocess, Segmenter
from .hooks import check_taps, run_tapped

PROBE_SIDE = 64  # the zero image's side at open time (rounded up to the size divisor)


def import_factory(factory: str, where: str) -> Any:
    """The callable `factory` ("package.module:function") names; one ConfigError if it cannot be imported."""
    module_name, _, attribute = factory.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise ConfigError(f"{where}.factory {factory!r}: cannot import {module_name!r} ({e}); install it or put "
                          "its directory on PYTHONPATH") from None
    except Exception as e:  # the user's module failed while importing: say so in one line
        raise ConfigError(f"{where}.factory {factory!r}: importing {module_name!r} failed: "
                          f"{type(e).__name__}: {e}") from None
    target: Any = module
    for part in attribute.split("."):
        if not hasattr(target, part):
            raise ConfigError(f"{where}.factory {factory!r}: {module_name!r} has no {attribute!r}")
        target = getattr(target, part)
    if not callable(target):
        raise ConfigError(f"{where}.factory {factory!r}: {attribute!r} is not callable")
    return target


def select_output(out: Any, key: str | int | None, where: str) -> torch.Tensor:
    """The logits tensor in a module's output: by `key` (dict key, tuple index or attribute), else the output
    itself or a dict's only tensor."""
    value = out
    if key is not None:
        if isinstance(out, Mapping) and key in out:
            value = out[key]
        elif isinstance(out, (tuple, list)) and isinstance(key, int) and -len(out) <= key < len(out):
            value = out[key]
        elif isinstance(key, str) and hasattr(out, key):
            value = getattr(out, key)
        else:
            raise ConfigError(f"{where}.output.key {key!r}: the model's output ({type(out).__name__}"
                              f"{' with keys ' + ', '.join(map(str, out)) if isinstance(out, Mapping) else ''}) "
                              "has no such entry")
    elif isinstance(out, Mapping):
        tensors = [k for k, v in out.items() if isinstance(v, torch.Tensor)]
        if len(tensors) != 1:
            raise ConfigError(f"{where}: the model returns a dict with keys {', '.join(map(str, out))}; name the "
                              "logits with output: {key: ...}")
        value = out[tensors[0]]
    if not isinstance(value, torch.Tensor) or value.ndim != 4 or not value.is_floating_point():
        shape = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
        raise ConfigError(f"{where}: the model's output {shape} is not (B, K, h, w) float logits; fix the factory "
                          "or name the logits with output: {key: ...}")
    return value


def read_state(path: str, where: str) -> dict[str, torch.Tensor]:
    """A state dict from a torch (weights_only) or safetensors file, unwrapped from {state_dict|model: ...}."""
    from ..checkpoints.files import safetensors_load, torch_load

    file = Path(path)
    if not file.is_file():
        raise CheckpointError(f"{where}.checkpoint {path}: no such file; check the path")
    state = safetensors_load(file)[0] if file.suffix == ".safetensors" else torch_load(file)
    for wrapper in ("state_dict", "model"):
        if isinstance(state, Mapping) and isinstance(state.get(wrapper), Mapping):
            state = state[wrapper]
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path}: not a state dict (a mapping of tensor names to tensors); save it with "
                              "torch.save(model.state_dict(), path)")
    return dict(state)


class PythonSegmenter(Segmenter):
    """A user's module: its output selected by ``output.key``, its taps by module name."""

    def __init__(self, module: nn.Module, entry: ModelEntry, preprocess: Preprocess, num_classes: int,
                 key: str | int | None, where: str) -> None:
        super().__init__(module, name=entry.name, family="python", display_name=entry.name or entry.factory,
                         num_classes=num_classes, preprocess=preprocess, taps=tuple(entry.taps),
                         min_input_side=preprocess.size_divisor,
                         description={"factory": entry.factory, "options": dict(entry.options),
                                      "preprocess": dict(entry.preprocess), "output": dict(entry.output)})
        self.tap_modules = dict(entry.taps)
        self.key = key
        self.where = where

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return select_output(self.module(x), self.key, self.where)

    def tap_features(self, x: torch.Tensor, names: Sequence[str]) -> dict[str, torch.Tensor]:
        captured, logits = run_tapped(self.module, self.tap_modules, names, lambda: self.network(x))
        return {**captured, "logits": logits}


def open_python(entry: ModelEntry, num_classes: int | None, where: str) -> Segmenter:
    """A ``python``-family entry's Segmenter (module docstring)."""
    label = f"{where} ({entry.name})" if entry.name else where
    preprocess = from_mapping(Preprocess, dict(entry.preprocess), f"{label}.preprocess")
    unknown = sorted(set(entry.output) - {"key", "stride"})
    if unknown:
        raise ConfigError(f"{label}.output: unknown field(s) {', '.join(unknown)}; allowed are key and stride")
    key, stride = entry.output.get("key"), entry.output.get("stride")
    if stride is not None and (type(stride) is not int or stride < 1):
        raise ConfigError(f"{label}.output.stride must be a whole number ≥ 1, got {stride!r}")
    factory = import_factory(entry.factory, label)
    try:
        module = factory(**entry.options)
    except Exception as e:
        raise ConfigError(f"{label}: {entry.factory}(**options) raised {type(e).__name__}: {e}") from None
    if not isinstance(module, nn.Module):
        raise ConfigError(f"{label}: {entry.factory} returned a {type(module).__name__}, not a torch nn.Module")
    if entry.checkpoint is not None:
        state = read_state(entry.checkpoint, label)
        from ..checkpoints import load_state_strict

        try:
            load_state_strict(module, state)
        except CheckpointError as e:
            raise CheckpointError(f"{entry.checkpoint}: {e} built by {entry.factory}") from None
    check_taps(module, entry.taps, label)
    module.eval()
    side = preprocess.divisible((PROBE_SIDE, PROBE_SIDE))
    with torch.no_grad():
        try:
            out = module(torch.zeros(1, 3, *side))
        except Exception as e:
            raise ConfigError(f"{label}: the model failed on a {side[0]}×{side[1]} image: {type(e).__name__}: "
                              f"{e}") from None
    logits = select_output(out, key, label)
    if stride is not None:
        expected = [-(-s // stride) for s in side]
        if any(abs(got - want) > 1 for got, want in zip(logits.shape[-2:], expected, strict=True)):
            raise ConfigError(f"{label}.output.stride {stride}: a {side[0]}×{side[1]} input gives "
                              f"{tuple(logits.shape[-2:])} logits, not about {tuple(expected)}; fix the stride")
    classes = int(logits.shape[1])
    if entry.num_classes is not None and entry.num_classes != classes:
        raise ConfigError(f"{label}: num_classes is {entry.num_classes} but the model gives {classes} logits")
    return PythonSegmenter(module, entry, preprocess, classes, key, label)
