"""segformer-bench: a weight-compatible SegFormer and a robustness benchmark around it.

The public entry points are imported lazily so that ``import segformer_bench`` (and the CLI's
``--help``) stays instant: torch is only loaded when a model is built or loaded.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = ["build_model", "load_model", "open_model", "Segmenter", "save_model", "export_huggingface", "UserError",
           "__version__"]

from .errors import UserError

if TYPE_CHECKING:  # pragma: no cover
    from .models.checkpoints import export_huggingface, load_model, save_model
    from .models.open import open_model
    from .models.registry import build_model
    from .models.segmenter import Segmenter

_LAZY = {
    "build_model": "segformer_bench.models.registry",
    "load_model": "segformer_bench.models.checkpoints",
    "save_model": "segformer_bench.models.checkpoints",
    "export_huggingface": "segformer_bench.models.checkpoints",
    "open_model": "segformer_bench.models.open",
    "Segmenter": "segformer_bench.models.segmenter",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'segformer_bench' has no attribute {name!r}")
