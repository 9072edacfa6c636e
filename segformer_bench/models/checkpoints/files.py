"""Opening one checkpoint file safely, whatever layout its tensors are in: a torch file or safetensors.

Every format module reads through these two functions, so that an unreadable file gets one clear message
wherever it turns up, and no file can run code: torch files are read with ``weights_only=True``. When torch
refuses a file, ``pickle_globals`` reads its pickle opcodes (without executing any) to tell a file that asks
for Python code (a ``__reduce__`` calling ``os.system``, say) from a damaged one, and to name what it asks for.
"""

from __future__ import annotations

import _compat_pickle
import pickle
import pickletools
import re
import warnings
import zipfile
from pathlib import Path

import torch

from ...errors import CheckpointError

# Opcodes that push a string a later STACK_GLOBAL may take as its module or name.
_STRING_OPS = {"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE", "SHORT_BINSTRING", "BINSTRING", "STRING"}
_MAX_OPCODES = 1_000_000  # a diagnostic scan: enough for any state dict's pickle, bounded for a hostile one


def _check_not_empty(path: Path, what: str) -> None:
    if path.is_file() and path.stat().st_size == 0:
        raise CheckpointError(f"{path}: is empty (0 bytes), not a {what}: the download or copy did not finish; "
                              "fetch or export it again")


def _qualified(module: str, name: str = "") -> str:
    """``module.name``, with Python 2's module names (protocol 2 pickles write ``__builtin__``) as Python 3's."""
    return f"{_compat_pickle.IMPORT_MAPPING.get(module, module)}.{name}"


def _scan(stream, found: list[str]) -> None:
    """Append the ``module.name`` of every GLOBAL / STACK_GLOBAL of one pickle in `stream` to `found`."""
    memo: dict[int, object] = {}
    recent: list[object] = []  # the values pushed lately, as far as a STACK_GLOBAL needs them
    for count, (op, arg, _pos) in enumerate(pickletools.genops(stream)):
        if count > _MAX_OPCODES:
            return
        name = op.name
        if name in ("GLOBAL", "INST"):
            found.append(_qualified(*str(arg).split(" ", 1)))
        elif name == "STACK_GLOBAL":
            if len(recent) >= 2 and all(isinstance(v, str) for v in recent[-2:]):
                found.append(_qualified(recent[-2], recent[-1]))
            else:
                found.append("<a global whose name is computed>")
        if name in _STRING_OPS:
            recent.append(arg)
        elif name in ("BINGET", "LONG_BINGET", "GET"):
            recent.append(memo.get(int(arg)))
        elif name in ("BINPUT", "LONG_BINPUT", "PUT"):
            memo[int(arg)] = recent[-1] if recent else None
        elif name == "MEMOIZE":
            memo[len(memo)] = recent[-1] if recent else None
        else:
            recent.append(None)
        del recent[:-2]


def pickle_globals(path: Path) -> list[str]:
    """The Python objects (``module.name``) the pickles of torch file `path` would import, read from their
    opcodes without executing anything: a zip file's ``*.pkl`` members, or the pickles of a legacy file.
    Stops quietly where the data is damaged."""
    found: list[str] = []
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                for member in archive.namelist():
                    if member.endswith(".pkl"):
                        with archive.open(member) as stream:
                            _scan(stream, found)
        else:
            with open(path, "rb") as stream:
                for _ in range(5):  # a legacy torch file: magic, protocol, system info, the object, storage keys
                    _scan(stream, found)
    except (ValueError, EOFError, OSError, zipfile.BadZipFile, UnicodeDecodeError, KeyError, IndexError):
        pass
    return found


def _allowed_globals() -> set[str]:
    """What ``torch.load(weights_only=True)`` accepts: its built-in allowlist (a private table, so read
    defensively) and the globals registered with ``torch.serialization.add_safe_globals``."""
    allowed: set[str] = set()
    try:
        from torch import _weights_only_unpickler

        allowed.update(_weights_only_unpickler._get_allowed_globals())
    except (ImportError, AttributeError, TypeError):
        pass
    for g in torch.serialization.get_safe_globals():
        g = g[0] if isinstance(g, tuple) else g
        allowed.add(f"{getattr(g, '__module__', '')}.{getattr(g, '__qualname__', g)}")
    return allowed


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return (text.splitlines()[0] if text else type(e).__name__)[:200]


def torch_load(path: Path) -> object:
    """The object in a torch file, on the CPU; a file that needs Python code to unpickle is refused."""
    _check_not_empty(path, "PyTorch checkpoint")
    try:
        with warnings.catch_warnings():  # e.g. "pickle protocol 4": the error below says what matters
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        allowed = _allowed_globals()
        asked = [g for g in pickle_globals(path) if g not in allowed]
        named = re.search(r"GLOBAL (\S+)", str(e))
        if not asked and named is None:
            raise CheckpointError(f"{path}: not a readable PyTorch checkpoint (corrupt, truncated or not a torch "
                                  "file); download or export it again") from None
        culprits = list(dict.fromkeys(asked)) or [named[1]]
        shown = ", ".join(map(repr, culprits[:3])) + (f" and {len(culprits) - 3} more" if len(culprits) > 3 else "")
        raise CheckpointError(
            f"{path}: refused to load: the file needs the Python object{'s' * (len(culprits) > 1)} {shown} to "
            "be unpickled, which would run its code (nothing was run). Re-save its tensors with "
            "torch.save(state_dict) or safetensors, from a source you trust."
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile) as e:
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({_first_line(e)}); download or export "
                              "it again") from None


def safetensors_load(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """(tensors, metadata) of a safetensors file."""
    from safetensors import SafetensorError, safe_open

    _check_not_empty(path, "safetensors file")
    try:
        with safe_open(str(path), framework="pt") as f:
            return {k: f.get_tensor(k) for k in f.keys()}, dict(f.metadata() or {})
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{path}: not a readable safetensors file ({_first_line(e)})") from None
