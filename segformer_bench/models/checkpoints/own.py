"""This package's own checkpoint format: written by ``save_model``, recognised when any file is read.

A torch file ``{'format': 'segformer-bench', 'version': 1, 'config': model.config.to_dict(), 'model':
state_dict, **extra}`` (training checkpoints add the optimiser and RNG states as `extra`), or a
``.safetensors`` file whose metadata holds the config as JSON. The config is what makes a file complete:
a DeepLabV3+ file's ``arch: deeplabv3plus`` says which family it holds (a config without ``arch`` is a
SegFormer's), and its atrous rates and output stride are in no tensor's shape.

``read_file`` opens any single checkpoint file, ours or not: another file's tensors come without a config (an
mmcv-saved file's ``meta`` comes along, for ``mmseg.py``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

import torch

from ...errors import CheckpointError, UserError
from ..base import SegmentationModel
from ..deeplab import DeepLabConfig
from .files import safetensors_load, torch_load

FORMAT_TAG = "segformer-bench"
FORMAT_VERSION = 1


def read_file(path: Path) -> tuple[dict[str, torch.Tensor], dict | None, dict | None]:
    """The flat state dict of one checkpoint file, its config when the file is one of ours, and the ``meta``
    mapping that mmcv saves next to a ``state_dict`` (None when there is none)."""
    if path.suffix == ".safetensors":
        state, meta = safetensors_load(path)
        if "segformer_bench_config" not in meta:
            return state, None, None
        try:
            config = json.loads(meta["segformer_bench_config"])
        except json.JSONDecodeError:
            config = None
        if not isinstance(config, dict):
            raise CheckpointError(f"{path}: its segformer_bench_config metadata is not a JSON object of config "
                                  "fields; save the model again with save_model")
        return state, config, None
    return _unwrap(torch_load(path), path)


def _unwrap(obj: object, path: Path) -> tuple[dict[str, torch.Tensor], dict | None, dict | None]:
    """The flat state dict inside a loaded file, our config when the file is our own, mmcv's ``meta``."""
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{path}: expected a dict of tensors, found {type(obj).__name__}")
    if obj.get("format") == FORMAT_TAG:
        return (*_own_parts(obj, path), None)
    state = obj.get("state_dict", obj)
    if not isinstance(state, Mapping):
        raise CheckpointError(f"{path}: 'state_dict' is not a dict of tensors")
    tensors = {k.removeprefix("module."): v for k, v in state.items()
               if isinstance(k, str) and isinstance(v, torch.Tensor)}
    if not tensors:
        raise CheckpointError(f"{path}: holds no tensors")
    meta = obj.get("meta") if "state_dict" in obj else None
    return tensors, None, dict(meta) if isinstance(meta, Mapping) else None


def _own_parts(obj: Mapping, path: Path) -> tuple[dict[str, torch.Tensor], dict]:
    """The model state and config of a file tagged as ours; a file missing either was not written whole by
    ``save_model`` (or was edited), and is refused rather than guessed at."""
    model, config = obj.get("model"), obj.get("config")
    if not isinstance(model, Mapping) or not model:
        found = "no 'model' entry" if model is None else f"'model' is {type(model).__name__}, not a state dict"
        raise CheckpointError(f"{path}: a {FORMAT_TAG} checkpoint without its model state ({found}); save the "
                              "model again with save_model, or use the run's final model.pt")
    bad = [k for k, v in model.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise CheckpointError(f"{path}: its 'model' state holds {len(bad)} entries that are not named tensors "
                              f"(first: {str(bad[0])[:80]!r}); save the model again with save_model")
    if not isinstance(config, Mapping):
        found = "no 'config' entry" if config is None else f"'config' is {type(config).__name__}"
        raise CheckpointError(f"{path}: a {FORMAT_TAG} checkpoint without its config ({found}); save the model "
                              "again with save_model")
    return dict(model), dict(config)


def deeplab_config(known: dict, num_classes: int | None, where: str) -> DeepLabConfig:
    """The DeepLabV3+ config a file of ours records (`known`); its classifier must agree with `num_classes`."""
    try:
        config = DeepLabConfig.from_dict(known)
    except UserError as e:
        raise CheckpointError(f"{where}: its config is invalid: {e}") from None
    if num_classes is not None and num_classes != config.num_classes:
        raise CheckpointError(f"{where}: checkpoint's classifier has {config.num_classes} classes but "
                              f"num_classes={num_classes} was asked; omit num_classes")
    return config


def save_model(model: SegmentationModel, path: str | os.PathLike,
               extra: Mapping[str, object] | None = None) -> Path:
    """Write this project's checkpoint: ``.safetensors`` (config in the metadata) or a torch file
    (``{'format', 'version', 'config', 'model', **extra}``, loadable with ``weights_only=True``).

    The file is written atomically and reaches the disk before the rename that publishes it
    (``image_io.atomic_path``); both formats are written through a Python file, so a full or read-only disk is
    the one-line error of ``image_io.writing`` rather than the serialiser's own exception."""
    from ...image_io import atomic_path

    path = Path(path)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    with atomic_path(path) as tmp:
        if path.suffix == ".safetensors":
            from safetensors.torch import save

            tmp.write_bytes(save(state, metadata={"format": FORMAT_TAG,
                                                  "segformer_bench_config": json.dumps(model.config.to_dict())}))
        else:
            try:
                with open(tmp, "wb") as f:
                    torch.save({"format": FORMAT_TAG, "version": FORMAT_VERSION, "config": model.config.to_dict(),
                                "model": state, **(extra or {})}, f)
            except RuntimeError as e:  # torch's zip writer, closing after a failed write, hides the OSError
                cause = e.__context__
                while cause is not None and not isinstance(cause, OSError):
                    cause = cause.__context__
                if cause is None:
                    raise
                raise cause from None
    return path
