"""Feature taps of foreign models by module name: forward hooks record named submodules' outputs during one
forward pass (the general tool for a model this package did not write, REFERENCE §9).

A tap is ``name: module.path`` (``module.path`` as ``nn.Module.get_submodule`` reads it, e.g.
``backbone.layer1``); a trailing ``:input`` taps the module's (first) input instead of its output, e.g.
``decode_head.classifier:input`` for the feature a head's classifier sees.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
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


@contextmanager
def recording(root: nn.Module, sources: Mapping[str, tuple[str, bool]], captured: dict[str, Any]) -> Iterator[None]:
    """Within the block, each source ``key: (module path, on_input)`` records into `captured[key]` the module's
    first input (positional or keyword) or its output, as the first call gives it. The hooks return None: a
    hook's return value would replace the module's inputs or output."""
    def on_input(key: str) -> Callable[..., None]:
        def hook(_module: nn.Module, args: tuple, kwargs: dict) -> None:
            captured.setdefault(key, args[0] if args else next(iter(kwargs.values())))
        return hook

    def on_output(key: str) -> Callable[..., None]:
        def hook(_module: nn.Module, _args: tuple, out: Any) -> None:
            captured.setdefault(key, out)  # the first call's (a module run twice keeps its first output)
        return hook

    handles = []
    try:
        for key, (path, input_side) in sources.items():
            module = root.get_submodule(path)
            handles.append(module.register_forward_pre_hook(on_input(key), with_kwargs=True) if input_side
                           else module.register_forward_hook(on_output(key)))
        yield
    finally:
        for handle in handles:
            handle.remove()


def run_tapped(root: nn.Module, taps: Mapping[str, str], names: Sequence[str],
               run: Callable[[], torch.Tensor]) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """(the requested taps' feature maps, run()'s result) from one call of `run` with hooks on `root`'s modules."""
    captured: dict[str, Any] = {}
    with recording(root, {n: _parse(taps[n]) for n in names if n in taps}, captured):
        result = run()
    missing = [n for n in names if n in taps and n not in captured]
    if missing:
        raise ConfigError(f"tap(s) {', '.join(missing)}: the module never ran in the forward pass; tap one that does")
    return {n: _feature(v, n) for n, v in captured.items()}, result
