"""Opening one checkpoint file safely, whatever layout its tensors are in: a torch file or safetensors.

Every format module reads through these two functions, so that an unreadable file gets one clear message
wherever it turns up, and no file can run code: torch files are read with ``weights_only=True``.
"""

from __future__ import annotations

import pickle
import re
from pathlib import Path

import torch

from ...errors import CheckpointError


def torch_load(path: Path) -> object:
    """The object in a torch file, on the CPU; a file that needs Python code to unpickle is refused."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        needs_code = re.search(r"Unsupported global: GLOBAL (\S+)", str(e))
        if needs_code is None:
            raise CheckpointError(f"{path}: not a readable PyTorch checkpoint (corrupt, truncated or not a torch "
                                  "file); download or export it again") from None
        raise CheckpointError(
            f"{path}: refused to load: the file needs the Python object {needs_code[1]!r} to be unpickled, "
            "which could run arbitrary code. Re-save its tensors with torch.save(state_dict) or safetensors."
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError) as e:
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({str(e).splitlines()[0][:200]})") from None


def safetensors_load(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """(tensors, metadata) of a safetensors file."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            return {k: f.get_tensor(k) for k in f.keys()}, dict(f.metadata() or {})
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{path}: not a readable safetensors file ({e})") from None
