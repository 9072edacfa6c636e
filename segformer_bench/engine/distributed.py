"""torch.distributed under torchrun: one place that reads the environment and starts the process group."""

from __future__ import annotations

import os

import torch


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


def device_for(name: str, local_rank: int) -> torch.device:
    """The device named (see inference.resolve_device); a bare 'cuda' means this process's local GPU."""
    from .inference import resolve_device

    device = resolve_device(name)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    return device
