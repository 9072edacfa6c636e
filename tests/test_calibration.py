"""Calibration counts and scores against torchmetrics (ECE, MCE), torch's NLL and a hand Brier score."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchmetrics

from segformer_bench.calibration import brier, calibration_counts, ece, mce, nll

K = 5


@pytest.fixture()
def batch():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, K, 12, 10, generator=g) * 3
    labels = torch.randint(0, K, (3, 12, 10), generator=g)
    labels[0, :3] = 255
    labels[2, 5:] = 255
    return logits.softmax(1), labels


def flat(probs, labels):
    return probs.permute(0, 2, 3, 1).reshape(-1, K), labels.reshape(-1)


@pytest.mark.parametrize("bins", [15, 10])
def test_ece_and_mce_equal_torchmetrics(batch, bins):
    probs, labels = batch
    counts = calibration_counts(probs, labels, bins=bins)
    p, y = flat(probs, labels)
    for norm, ours in (("l1", ece(counts)), ("max", mce(counts))):
        metric = torchmetrics.classification.MulticlassCalibrationError(num_classes=K, n_bins=bins, norm=norm,
                                                                        ignore_index=255)
        assert ours == pytest.approx(float(metric(p.double(), y)), abs=1e-6)


def test_nll_and_brier(batch):
    probs, labels = batch
    counts = calibration_counts(probs, labels)
    p, y = flat(probs, labels)
    keep = y != 255
    assert nll(counts) == pytest.approx(float(F.nll_loss(p[keep].double().log(), y[keep])), rel=1e-9)
    one_hot = F.one_hot(y[keep], K).double()
    assert brier(counts) == pytest.approx(float(((p[keep].double() - one_hot) ** 2).sum(1).mean()), rel=1e-9)


def test_counts_add_over_images(batch):
    probs, labels = batch
    counts = calibration_counts(probs, labels)
    parts = np.concatenate([calibration_counts(probs[i:i + 1], labels[i:i + 1]) for i in range(3)])
    np.testing.assert_allclose(parts, counts)
    subset = calibration_counts(probs[:2], labels[:2])
    assert ece(counts[:2]) == pytest.approx(ece(subset))
    assert counts[:, -1].tolist() == [90.0, 120.0, 50.0]  # non-ignored pixels per image


def test_bins_are_right_closed_by_hand():
    """Confidences 1.0 and 0.55 with 5 bins: (0.8, 1] and (0.4, 0.6]; one right, one wrong."""
    probs = torch.tensor([[1.0, 0.0], [0.55, 0.45]]).T.reshape(1, 2, 1, 2)
    labels = torch.tensor([[[0, 1]]])
    counts = calibration_counts(probs, labels, bins=5)[0, :15].reshape(5, 3)
    np.testing.assert_allclose(counts[4], [1, 1.0, 1])
    np.testing.assert_allclose(counts[2], [1, 0.55, 0], rtol=1e-6)
    assert ece(calibration_counts(probs, labels, bins=5)) == pytest.approx((0 + 0.55) / 2, rel=1e-6)


def test_an_image_without_labelled_pixels_counts_nothing():
    probs = torch.full((1, K, 2, 2), 1 / K)
    counts = calibration_counts(probs, torch.full((1, 2, 2), 255))
    assert not counts.any() and np.isnan(ece(counts))


def test_ece_interval_resamples_images_as_torchmetrics_sees_them(batch):
    """Each bootstrap resample's ECE equals torchmetrics' ECE over the pixels of the images drawn (an image drawn
    twice counted twice), and the interval is the percentiles of those."""
    from segformer_bench.analyses.stats import ece_interval, resample_counts

    probs, labels = batch
    counts = calibration_counts(probs, labels)
    draws = resample_counts(3, 20, 7)
    metric = torchmetrics.classification.MulticlassCalibrationError(num_classes=K, n_bins=15, norm="l1",
                                                                    ignore_index=255)
    samples = []
    for row in draws:
        chosen = [i for i in range(3) for _ in range(int(row[i]))]
        p, y = flat(probs[chosen], labels[chosen])
        samples.append(float(metric(p.double(), y)))
    interval = ece_interval(counts, n_resamples=20, confidence=0.9, seed=7)
    assert interval.value == pytest.approx(ece(counts))
    assert interval.low == pytest.approx(np.percentile(samples, 5), abs=1e-6)
    assert interval.high == pytest.approx(np.percentile(samples, 95), abs=1e-6)
