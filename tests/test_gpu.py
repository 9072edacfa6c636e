"""GPU checks (skipped without CUDA): the same numbers on the device, and mixed-precision training runs."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

import segformer_bench as sb

pytestmark = pytest.mark.gpu


def test_model_on_cuda_matches_cpu():
    model = sb.build_model("b0", 19).eval()
    x = torch.randn(2, 3, 97, 130)
    with torch.no_grad():
        want = model(x)
        got = model.cuda()(x.cuda()).cpu()
    torch.testing.assert_close(got, want, rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_mixed_precision_training_on_cuda(tmp_path, amp):
    from segformer_bench.engine.train import train

    from .helpers import TINY_TRAIN


    config = dataclasses.replace(TINY_TRAIN, device="cuda", amp=amp, iters=3)
    path = train(config, tmp_path / amp, progress=False, log=lambda _: None)
    state = torch.load(path, map_location="cpu", weights_only=True)["model"]
    assert all(torch.isfinite(t).all() for t in state.values() if t.is_floating_point())


@pytest.mark.parametrize("variant", ["b0", "deeplabv3plus-r50"])
def test_erf_maps_on_cuda_match_cpu(variant):
    from segformer_bench.analyses.erf.maps import contribution_maps

    model = sb.build_model(variant, 19).eval()
    x = torch.randn(2, 3, 96, 96)
    want = contribution_maps(model, x)
    got = contribution_maps(model.cuda(), x.cuda())
    for tap, m in want.items():
        assert got[tap].device.type == "cuda"
        torch.testing.assert_close(got[tap].cpu(), m, rtol=1e-3, atol=1e-3 * float(m.abs().max()))


def test_every_analysis_runs_on_cuda(tmp_path):
    from segformer_bench.analyses.corruption.store import cell_matrices
    from segformer_bench.analyses.erf.store import blocks
    from segformer_bench.analyses.resolution.store import results
    from segformer_bench.bench.runner import run_suite
    from segformer_bench.bench.suite import load_suite

    from .helpers import analyses_suite, stored

    path = analyses_suite(tmp_path, analyses=["corruption", "resolution", "erf"], device="cuda",
                       corruptions={"protocol": "segformer", "cells": [["fog", 1]], "backend": "torch"})
    run = run_suite(load_suite(path), tmp_path / "run", progress=False, render=False, log=lambda _: None)
    assert len(stored(run, cell_matrices)) == 6 and len(stored(run, results)) == 4
    assert len(stored(run, blocks)) == 6


def _adversarial_and_conditions_suite(tmp_path) -> str:
    """A tiny suite (B0 and a DeepLabV3+ from the analyses' helper): PGD and CosPGD at ε = 0 and 4/255, SynthCity
    clear and at night."""
    from .helpers import analyses_suite

    return analyses_suite(tmp_path, analyses=["adversarial", "conditions"],
                          adversarial={"models": ["Mix", "DL"],
                                       "attacks": [{"method": "pgd", "eps": [0, 4], "steps": 3},
                                                   {"method": "cospgd", "eps": [4], "steps": 3}]},
                          conditions={"models": ["Mix", "DL"], "reference": "clear",
                                      "conditions": [{"name": "clear"},
                                                     {"name": "night", "options": {"condition": "night"}}]})


def _run_on(path: str, device: str, run_dir) -> tuple[dict, dict]:
    """The adversarial and conditions units of the suite at `path` run on `device` (same checkpoints)."""
    import yaml

    from segformer_bench.analyses.adversarial.store import results as attacks
    from segformer_bench.analyses.conditions.store import results as conditions
    from segformer_bench.bench.runner import run_suite
    from segformer_bench.bench.suite import load_suite

    from .helpers import stored

    data = yaml.safe_load(open(path, encoding="utf-8")) | {"device": device}
    moved = path.replace(".yaml", f"-{device}.yaml")
    with open(moved, "w", encoding="utf-8") as f:
        yaml.safe_dump(data, f, allow_unicode=True)
    run = run_suite(load_suite(moved), run_dir, progress=False, render=False, log=lambda _: None)
    return stored(run, attacks), stored(run, conditions)


CLEAN = "PGD L∞"  # the ε = 0 unit's attack label


def _pixels_moved(a: np.ndarray, b: np.ndarray) -> float:
    """The share of pixels whose (label, prediction) cell differs between two stacks of confusion matrices."""
    return float(np.abs(a.astype(np.int64) - b.astype(np.int64)).sum() / (2 * a.sum()))


def test_adversarial_and_conditions_on_cuda_match_cpu(tmp_path):
    """The two analyses test_every_analysis_runs_on_cuda leaves out, on CUDA and on the CPU from the same
    checkpoints: the same units; where nothing is attacked (ε = 0, the conditions) the per-image confusion
    matrices agree but for a few pixels (argmax ties under other float sums); every attack raises each image's
    loss above its clean loss on both devices."""
    path = _adversarial_and_conditions_suite(tmp_path)
    cpu_attacks, cpu_conditions = _run_on(path, "cpu", tmp_path / "run-cpu")
    gpu_attacks, gpu_conditions = _run_on(path, "cuda", tmp_path / "run-cuda")
    assert sorted(gpu_attacks) == sorted(cpu_attacks) and len(gpu_attacks) == 2 * 3
    assert sorted(gpu_conditions) == sorted(cpu_conditions) == [(m, c) for m in ("DL", "Mix")
                                                                  for c in ("clear", "night")]
    for key, unit in gpu_conditions.items():
        assert _pixels_moved(unit.per_image, cpu_conditions[key].per_image) <= 0.01, key
    for (model, attack, eps), unit in gpu_attacks.items():
        if eps == 0:
            assert _pixels_moved(unit.per_image, cpu_attacks[model, attack, eps].per_image) <= 0.01
            continue
        for results in (gpu_attacks, cpu_attacks):
            assert (results[model, attack, eps].loss > results[model, CLEAN, 0.0].loss).all(), (model, attack)
