"""ERF machinery against cases with a known answer: a conv stack's receptive field, a linear model's
analytic gradient, hand-computed area ratios."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import segformer_bench as sb
from segformer_bench.analyses.erf.maps import (
    TAPS,
    ERFAccumulator,
    area_ratio,
    area_ratios,
    contribution_maps,
    normalise_log,
    normalise_power,
)


class ConvStack(nn.Module):
    """A 'model' with the protocol's named feature taps: stage i is i + 1 stacked 3×3 convs (stride 1);
    ``fused`` and ``logits`` are the last stage's output."""

    def __init__(self, positive: bool = True) -> None:
        super().__init__()
        convs = [nn.Conv2d(3 if i == 0 else 4, 4, 3, padding=1, bias=False) for i in range(4)]
        if positive:
            for c in convs:
                nn.init.uniform_(c.weight, 0.01, 1.0)
        self.convs = nn.ModuleList(convs)

    def forward_features(self, x):
        out = []
        for conv in self.convs:
            x = conv(x)
            out.append(x)
        return out

    def features(self, x, names=TAPS):
        stages = self.forward_features(x)
        out = {f"stage{i + 1}": f for i, f in enumerate(stages)}
        out["fused"] = out["logits"] = stages[-1]
        return {n: out[n] for n in names}


def test_conv_stack_erf_support_is_its_receptive_field():
    model = ConvStack()
    x = torch.rand(2, 3, 21, 23) + 0.1  # positive input: every unit on the path is active
    maps = contribution_maps(model, x)
    for i in range(4):
        support = maps[f"stage{i + 1}"][0] > 0
        r = i + 1  # i + 1 stacked 3×3 convs: a (2r + 1)² receptive field around the centre
        expected = torch.zeros_like(support)
        expected[10 - r: 10 + r + 1, 11 - r: 11 + r + 1] = True
        assert torch.equal(support, expected), f"stage{i + 1}"


def test_linear_model_erf_equals_its_analytic_gradient():
    """One conv layer with positive response: ∂/∂x of Σ_k F_k[centre] is Σ_k W_k placed at the centre."""
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 5, 5, padding=2, bias=False)
    model = ConvStack()
    model.convs = nn.ModuleList([conv])
    x = torch.rand(1, 3, 15, 17)
    with torch.no_grad():
        active = model.forward_features(x)[0][0, :, 7, 8] > 0  # ReLU passes only active channels
    grad = np.zeros((3, 15, 17))
    w = conv.weight.detach().numpy()
    for k in np.flatnonzero(active.numpy()):
        grad[:, 5:10, 6:11] += w[k]
    expected = np.clip(grad, 0, None).sum(0)
    got = contribution_maps(model, x, names=("stage1",))["stage1"][0].numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-7)


def test_area_ratio_by_hand():
    delta = np.zeros((9, 11))
    delta[4, 5] = 3.0
    assert area_ratio(delta, 0.5) == pytest.approx(1 / 99)
    uniform = np.ones((5, 5))
    assert area_ratios(uniform) == {0.2: pytest.approx(9 / 25), 0.3: pytest.approx(9 / 25),
                                    0.5: pytest.approx(25 / 25), 0.99: pytest.approx(1.0)}
    assert area_ratio(uniform, 1.0) is None  # never strictly exceeded
    corners = np.zeros((4, 6))
    corners[0, 0] = corners[-1, -1] = 1.0
    assert area_ratio(corners, 0.2) is None  # the largest centred square (3×3) misses both corners
    assert area_ratio(np.zeros((5, 5)), 0.5) is None


def test_normalisations():
    a = np.random.default_rng(0).random((6, 7)) * 50
    np.testing.assert_allclose(normalise_power(a * 7), normalise_power(a))
    assert normalise_log(a).max() == pytest.approx(1.0) and normalise_power(a).max() == pytest.approx(1.0)


def test_segformer_and_deeplab_taps_and_accumulation():
    x = torch.randn(2, 3, 64, 64)
    for model in (sb.build_model("b0", 19), sb.build_model("deeplabv3plus-r50", 19)):
        maps = contribution_maps(model, x)
        assert set(maps) == set(TAPS)
        assert all(m.shape == (2, 64, 64) and (m >= 0).all() for m in maps.values())
    acc = ERFAccumulator(("stage1",))
    acc.add({"stage1": torch.ones(2, 4, 4)})
    acc.add({"stage1": torch.tensor([[[float("nan")] * 4] * 4, [[3.0] * 4] * 4])})
    assert acc.count["stage1"] == 3 and acc.skipped["stage1"] == 1
    np.testing.assert_allclose(acc.means()["stage1"], np.full((4, 4), 5 / 3))
