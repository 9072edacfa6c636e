"""Feature taps of foreign models by module name: forward hooks record named submodules' outputs during one
forward pass (the general tool for a model this package did not write, REFERENCE §9).

A tap is ``name: module.path`` (``module.path`` as ``nn.Module.get_submodule`` reads it, e.g.
``backbone.layer1``); a trailing ``:input`` taps the module's (first) input instead of its output, e.g.
``decode_head.classifier:input`` for the feature a head's classifier sees.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from ...config import ConfigError


def _parse(target: str) -> tuple[str, bool]:
    path, _, which = target.partition(":")
    if which not in ("", "input"):
        raise ConfigError(f"tap {target!r}: write 'module.path' or 'module.path:input'")
    return path, which == "input"


def check_taps(root: nn.Module, taps: Mapping[str, str], where: str) -> None:
    """Every tap names a submodule of `root` (one ConfigError naming the first that does not)."""
    for name, target in taps.items():
        path, _ = _parse(target)
        try:
            root.get_submodule(path)
        except AttributeError:
            children = ", ".join(n for n, _ in list(root.named_children())[:8])
            raise ConfigError(f"{where}.taps.{name}: the model has no module {path!r} (its top-level modules: "
                              f"{children}); name one from model.named_modules()") from None


def _feature(value: Any, tap: str) -> torch.Tensor:
    if isinstance(value, (tuple, list)) and value and isinstance(value[0], torch.Tensor):
        value = value[0]
    if not isinstance(value, torch.Tensor) or value.ndim != 4:
        shape = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
        raise ConfigError(f"tap {tap!r}: its module gives {shape}, not a (B, C, h, w) feature map; tap another "
                          "module")
    return value


def run_tapped(root: nn.Module, taps: Mapping[str, str], names: Sequence[str],
               run: Callable[[], torch.Tensor]) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """(the requested taps' feature maps, run()'s result) from one call of `run` with hooks on `root`'s modules."""
    captured: dict[str, torch.Tensor] = {}

    def record(name: str, value: Any) -> None:  # returns None: a hook's return value would replace the
        if name not in captured:                # module's inputs or output (and a second call's by the first's)
            captured[name] = _feature(value, name)

    handles = []
    try:
        for name in names:
            if name not in taps:
                continue
            path, on_input = _parse(taps[name])
            module = root.get_submodule(path)
            if on_input:
                handles.append(module.register_forward_pre_hook(
                    lambda _m, args, name=name: record(name, args)))
            else:
                handles.append(module.register_forward_hook(
                    lambda _m, _args, out, name=name: record(name, out)))
        result = run()
    finally:
        for handle in handles:
            handle.remove()
    missing = [n for n in names if n in taps and n not in captured]
    if missing:
        raise ConfigError(f"tap(s) {', '.join(missing)}: the module never ran in the forward pass; tap one that does")
    return captured, result
