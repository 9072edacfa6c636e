"""Where a process runs: the device it was asked for, and torch.distributed under torchrun.

One place that reads the environment (torchrun's WORLD_SIZE and LOCAL_RANK), starts the process group, and
turns a device name from the user into a torch device.
"""

from __future__ import annotations

import os

import torch

from ..errors import UserError


def init_from_env() -> tuple[int, int, int]:
    """(rank, world size, local rank). Under torchrun (WORLD_SIZE > 1) the process group is initialised
    with NCCL when CUDA is available, else gloo; an already initialised group is used as it is."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return (torch.distributed.get_rank(), torch.distributed.get_world_size(),
                int(os.environ.get("LOCAL_RANK", 0)))
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        torch.distributed.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        return torch.distributed.get_rank(), torch.distributed.get_world_size(), int(os.environ.get("LOCAL_RANK", 0))
    return 0, 1, 0


def resolve_device(name: str) -> torch.device:
    """The torch device for 'auto' (CUDA when available, else CPU), 'cpu', 'cuda', 'cuda:N' or 'mps'."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserError(f"unknown device {name!r}; use cpu, cuda, cuda:N or auto") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"device {name!r} asked for, but this torch sees no CUDA device; use cpu or auto")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise UserError(f"device {name!r} does not exist: {torch.cuda.device_count()} CUDA device(s) visible")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise UserError(f"device {name!r} asked for, but MPS is not available; use cpu or auto")
    return device


def device_for(name: str, local_rank: int) -> torch.device:
    """The device named (see ``resolve_device``); a bare 'cuda' means this process's local GPU."""
    device = resolve_device(name)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    return device
