"""Per-image calibration counts from the evaluation engine, against the counts of the model's own softmax."""

import numpy as np
import torch

import segformer_bench as sb
from segformer_bench.calibration import calibration_counts
from segformer_bench.data import build_dataset
from segformer_bench.engine.evaluate import EVAL_PRESETS, evaluate
from segformer_bench.engine.inference import EvalSettings, segment_batch
from segformer_bench.models.segmenter import as_segmenter


def test_evaluate_returns_each_images_counts_of_the_softmax():
    torch.manual_seed(0)
    seg = as_segmenter(sb.build_model("b0", 19).eval())
    data = build_dataset("synthcity", "val", size=[32, 64], length=3)
    result = evaluate(seg, data, EVAL_PRESETS["whole"], calibration_bins=15)
    assert result.calibration.shape == (3, 48)
    for i in range(3):
        sample = data[i]
        x = torch.from_numpy(sample["image"]).permute(2, 0, 1)[None].float() / 255
        with torch.no_grad():
            probs = seg(x).softmax(1)
        expected = calibration_counts(probs, torch.from_numpy(sample["label"]).long()[None])
        np.testing.assert_allclose(result.calibration[i], expected[0], rtol=1e-6, atol=1e-6)
    assert evaluate(seg, data, EVAL_PRESETS["whole"]).calibration is None


def test_asking_for_probabilities_changes_no_label_and_averages_over_scales():
    torch.manual_seed(0)
    seg = as_segmenter(sb.build_model("b0", 19).eval())
    images = torch.randint(0, 256, (2, 3, 64, 96), dtype=torch.uint8)
    settings = EvalSettings(mode="whole", scales=(0.5, 1.0), flip=True)
    out: list[torch.Tensor] = []
    with torch.no_grad():
        labels = segment_batch(seg, images, settings, out)
        assert torch.equal(labels, segment_batch(seg, images, settings))
        assert torch.equal(out[0].argmax(1), labels)
    torch.testing.assert_close(out[0].sum(1), torch.ones(2, 64, 96))


def test_a_model_of_scores_is_left_out_of_calibration():
    torch.manual_seed(0)
    seg = as_segmenter(sb.build_model("b0", 19).eval())
    seg.outputs = "scores"
    data = build_dataset("synthcity", "val", size=[32, 64], length=1)
    assert evaluate(seg, data, EVAL_PRESETS["whole"], calibration_bins=15).calibration is None
