"""Helpers the test modules share: tiny suite files, a fake Cityscapes tree, the transformers oracle, a tiny
training config, reading a run's store, killing a run with SIGKILL, running a suite on two gloo ranks, and loading
a report page in headless Chromium."""

from __future__ import annotations

import dataclasses
import re
import shutil
import sqlite3
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

import segformer_bench as sb
from segformer_bench.bench.runner import open_store, run_suite
from segformer_bench.bench.suite import load_suite
from segformer_bench.engine.train import TRAIN_PRESETS

T = TypeVar("T")


# --- suites ----------------------------------------------------------------------------------------------

def corruption_suite(tmp_path, **changes) -> str:
    """A tiny corruption suite file in `tmp_path` (one B0 checkpoint, two cells on SynthCity); `changes`
    replace its top-level fields."""
    torch_model = sb.build_model("b0", 19)
    sb.save_model(torch_model, tmp_path / "b0.pt")
    data = {
        "version": 1, "name": "tiny",
        "dataset": {"name": "synthcity", "split": "val", "limit": 3, "options": {"size": [48, 96], "length": 3}},
        "models": [{"name": "B0", "variant": "b0", "checkpoint": "b0.pt"}],
        "corruptions": {"protocol": "segformer", "cells": [["contrast", 2], ["gaussian_noise", 1]],
                        "backend": "reference"},
        "eval": {"preset": "whole", "overrides": {"batch_size": 2}},
        "device": "cpu", "reports": ["tables"],
    }
    for key, value in changes.items():
        data[key] = value
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


SIZE = [32, 64]

TESTS = [
    {"name": "crop", "eval": {"preset": "whole", "overrides": {"mode": "slide", "crop": [32, 32], "stride": [24, 24]}}},
    {"name": "2x", "dataset_options": {"size": [64, 128]}},
]


def analyses_suite(tmp_path, **changes) -> str:
    """A tiny resolution + ERF suite file in `tmp_path` (B0, its PE variant and a DeepLabV3+ on SynthCity);
    `changes` replace its top-level fields."""
    sb.save_model(sb.build_model("b0", 19), tmp_path / "mix.pt")
    sb.save_model(sb.build_model("b0", 19, ffn="plain", pos_embed="learned", pos_embed_size=[32, 32]),
                  tmp_path / "pe.pt")
    sb.save_model(sb.build_model("deeplabv3plus-r50", 19, output_stride=16, channels=32), tmp_path / "dl.pt")
    data = {
        "version": 1, "name": "tiny", "analyses": ["resolution", "erf"],
        "dataset": {"name": "synthcity", "split": "val", "limit": 3, "options": {"size": SIZE, "length": 5}},
        "models": [{"name": "Mix", "variant": "b0", "checkpoint": "mix.pt"},
                   {"name": "PE", "variant": "b0", "checkpoint": "pe.pt"},
                   {"name": "DL", "variant": "deeplabv3plus-r50", "checkpoint": "dl.pt"}],
        "resolution": {"models": ["Mix", "PE"], "tests": TESTS},
        "erf": {"models": ["DL", "Mix"], "images": 5, "block": 2, "size": [40, 40], "taps": ["stage1", "logits"]},
        "device": "cpu", "reports": ["tables", "plots", "html"],
    }
    data |= changes
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


# --- a fake Cityscapes tree -------------------------------------------------------------------------------

H, W = 32, 64


CITIES = ("bochum", "aachen")  # written in non-sorted order on purpose


def save(path: Path, array: np.ndarray, **kwargs) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, **kwargs)
    return path


def random_image(seed: int, h: int = H, w: int = W) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def label_ids_map(seed: int) -> np.ndarray:
    """Every Cityscapes labelId 0..33 (and 255), shuffled over the image."""
    values = np.resize(np.r_[np.arange(34), 255], H * W).astype(np.uint8)
    return np.random.default_rng(seed).permutation(values).reshape(H, W)


def official_train_ids(label_ids: np.ndarray) -> np.ndarray:
    """cityscapesScripts' id → trainId, with its ignored classes (255, -1) and unknown ids as 255."""
    from cityscapesscripts.helpers.labels import id2label

    table = np.full(256, 255, np.uint8)
    for i, label in id2label.items():
        if 0 <= i < 256 and 0 <= label.trainId < 255:
            table[i] = label.trainId
    return table[label_ids]


def make_cityscapes(root: Path, split: str = "train", train_ids: bool = False) -> dict[str, tuple[Path, Path]]:
    """2 cities × 2 images of 32×64 with *_labelIds.png (and *_labelTrainIds.png when asked);
    returns name → (image path, label path)."""
    files = {}
    for c, city in enumerate(CITIES):
        for k in (19, 3):
            stem = f"{city}_{k:06d}_{k * 7:06d}"
            seed = 10 * c + k
            image = save(root / "leftImg8bit" / split / city / f"{stem}_leftImg8bit.png", random_image(seed))
            label = save(root / "gtFine" / split / city / f"{stem}_gtFine_labelIds.png", label_ids_map(seed))
            if train_ids:
                label = save(label.with_name(f"{stem}_gtFine_labelTrainIds.png"),
                             official_train_ids(label_ids_map(seed)))
            files[f"{city}/{stem}"] = (image, label)
    return files


def one_line_error(excinfo: pytest.ExceptionInfo, *parts: object) -> str:
    message = str(excinfo.value)
    assert "\n" not in message
    for part in parts:
        assert str(part) in message, f"{part} not in: {message}"
    return message


# --- the transformers oracle ------------------------------------------------------------------------------

def hf_config(variant: str, num_classes: int):  # -> transformers.SegformerConfig
    """A transformers config written from the paper/code table, not from this package's table."""
    from transformers import SegformerConfig

    widths = {"b0": [32, 64, 160, 256]}.get(variant, [64, 128, 320, 512])
    depths = {"b0": [2, 2, 2, 2], "b1": [2, 2, 2, 2], "b2": [3, 4, 6, 3], "b3": [3, 4, 18, 3],
              "b4": [3, 8, 27, 3], "b5": [3, 6, 40, 3]}[variant]
    decoder = 256 if variant in ("b0", "b1") else 768
    return SegformerConfig(hidden_sizes=widths, depths=depths, decoder_hidden_size=decoder,
                           num_labels=num_classes, num_attention_heads=[1, 2, 5, 8], sr_ratios=[8, 4, 2, 1],
                           mlp_ratios=[4, 4, 4, 4])


def randomize_(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Perturb every parameter and BN buffer so that any mis-wired tensor changes the logits."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if not t.is_floating_point():
                continue
            noise = torch.randn(t.shape, generator=g)
            if "running_var" in name:
                t.copy_(0.5 + noise.abs())
            elif t.ndim == 1:  # norms and biases
                t.add_(0.1 * noise)
            else:
                t.add_(0.02 * noise)
    return model


def match_released_eps(hf: torch.nn.Module) -> None:
    for name, m in hf.named_modules():
        if isinstance(m, torch.nn.LayerNorm) and ("layernorm_" in name or name.endswith(".layer_norm")) \
                and "patch_embeddings" not in name and "sequence_reduction" not in name:
            m.eps = 1e-6


def hf_model(variant: str, num_classes: int = 19, released_eps: bool = True) -> torch.nn.Module:
    """A randomised transformers SegFormer (the oracle), its block and stage norms at the released eps unless
    `released_eps` is False."""
    from transformers import SegformerForSemanticSegmentation

    torch.manual_seed(0)
    model = SegformerForSemanticSegmentation(hf_config(variant, num_classes))
    randomize_(model)
    if released_eps:
        match_released_eps(model)
    return model.eval()


def hf_logits(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The oracle's logits (no gradients)."""
    with torch.no_grad():
        return model(pixel_values=x).logits


# --- training -----------------------------------------------------------------------------------------------

TINY_TRAIN = dataclasses.replace(
    TRAIN_PRESETS["synthcity"], dataset_options={"size": [64, 128], "length": 8}, crop=(64, 64), img_scale=(128, 64),
    iters=4, batch_size=2, workers=0, log_interval=1, checkpoint_interval=2, eval_limit=2, warmup_iters=2,
)



def stored(run_dir: str | Path, read: Callable[..., T]) -> T:
    """`read(store)` on a run directory's results store, e.g. ``stored(run, cells.cell_matrices)``."""
    store = open_store(Path(run_dir) / "results.sqlite")
    try:
        return read(store)
    finally:
        store.close()


def run_then_kill_9(suite_path: str, run_dir, table: str, rows: int) -> list[str]:
    """Start `segformer-bench run` in a subprocess and SIGKILL it once `table` of its store has `rows` rows;
    returns the command line (without the run directory) for the reruns."""
    import os
    import signal
    import subprocess
    import sys
    import time

    cmd = [sys.executable, "-m", "segformer_bench", "run", suite_path, "--no-report", "--no-progress", "--run-dir"]
    proc = subprocess.Popen([*cmd, str(run_dir)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    db = run_dir / "results.sqlite"
    while time.monotonic() < deadline and proc.poll() is None:
        if db.exists():
            try:
                with sqlite3.connect(db, timeout=1) as conn:
                    if conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0] >= rows:  # noqa: S608
                        break
            except sqlite3.OperationalError:
                pass
        time.sleep(0.02)
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    return cmd


def _run_rank(rank, world, port, suite_path, run_dir):
    import os

    import torch

    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    torch.set_num_threads(1)
    try:
        run_suite(load_suite(suite_path), run_dir, progress=False, render=False, log=lambda _: None)
    finally:
        torch.distributed.destroy_process_group()


def run_two_gloo_ranks(suite_path: str, run_dir) -> None:
    """`run_suite` in two processes joined by a gloo process group, as torchrun would start them."""
    import socket

    import torch

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    torch.multiprocessing.spawn(_run_rank, args=(2, port, suite_path, str(run_dir)), nprocs=2, join=True)



def _browser() -> str | None:
    return next((path for name in ("chromium", "chromium-browser", "google-chrome") if (path := shutil.which(name))),
                None)


def images_loaded_in_browser(page: Path, profile: Path) -> tuple[int, int]:
    """(decoded, all) images of `page` after Chromium's headless load event (the page's script counts them)."""
    done = subprocess.run(
        [_browser(), "--headless", "--disable-gpu", "--no-sandbox", "--no-first-run", f"--user-data-dir={profile}",
         "--virtual-time-budget=5000", "--dump-dom", page.resolve().as_uri()],
        capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    loaded = re.search(r'data-images-loaded="(\d+)/(\d+)"', done.stdout)
    assert loaded, "the page's load script did not run"
    return int(loaded.group(1)), int(loaded.group(2))


needs_browser = pytest.mark.skipif(_browser() is None, reason="no Chromium/Chrome binary on PATH; install Debian's "
                                   "chromium to run this check")



# --- the command line's answer to a user's mistake --------------------------------------------------------------


def cli_error(argv: list[str], capsys: pytest.CaptureFixture) -> str:
    """Run ``segformer-bench ARGV`` in-process and check that it failed as a user's mistake should: exit status 2,
    exactly one line on stderr, ``segformer-bench: error: …``, and no traceback. Returns the message."""
    from segformer_bench.cli import main

    code = main(argv)
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert code == 2, (code, err)
    assert len(lines) == 1 and lines[0].startswith("segformer-bench: error: "), err
    assert "Traceback" not in err
    return lines[0].removeprefix("segformer-bench: error: ")
