"""GPU checks (skipped without CUDA): the same numbers on the device, and mixed-precision training runs."""

from __future__ import annotations

import dataclasses

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
