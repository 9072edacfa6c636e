"""The Segmenter interface on this package's own models, preprocessing, size divisors and class maps, each
against a hand computation."""

import pytest
import torch
import torch.nn.functional as F

import segformer_bench as sb
from segformer_bench.config import ConfigError
from segformer_bench.models.base import normalize
from segformer_bench.models.segmenter import UNMAPPED_LOGIT, Preprocess, Segmenter, as_segmenter, resolve_class_map
from tests.helpers import one_line_error


@pytest.fixture(scope="module")
def b0():
    torch.manual_seed(0)
    return sb.build_model("b0", 19).eval()


def test_builtin_preprocessing_is_bit_identical_to_the_engines_normalisation(b0):
    """The engine passes uint8-valued images with scale=255: the same arithmetic as before (the main job's numbers
    cannot move), and 0–1 images give the same network input up to float rounding."""
    seg = as_segmenter(b0)
    images = torch.randint(0, 256, (2, 3, 17, 23), dtype=torch.uint8)
    assert torch.equal(seg.preprocess(images.float(), scale=255), normalize(images))
    assert torch.equal(seg.preprocess(images, scale=255), normalize(images))
    torch.testing.assert_close(seg.preprocess(images.float() / 255), normalize(images), rtol=0, atol=1e-5)


def test_seg_returns_float32_logits_at_the_input_size_with_gradients(b0):
    seg = as_segmenter(b0)
    x = torch.rand(1, 3, 40, 56, requires_grad=True)
    logits = seg(x)
    mean = torch.tensor([123.675, 116.28, 103.53]).view(1, 3, 1, 1)
    std = torch.tensor([58.395, 57.12, 57.375]).view(1, 3, 1, 1)
    with torch.no_grad():  # by hand: normalise on 0–255, the module, bilinear resize to the input
        expected = F.interpolate(b0((x * 255 - mean) / std), size=(40, 56), mode="bilinear", align_corners=False)
    assert logits.dtype == torch.float32 and logits.shape == (1, 19, 40, 56)
    torch.testing.assert_close(logits.detach(), expected, rtol=1e-5, atol=1e-5)
    logits[0, 3, 20, 28].backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_wrapping_keeps_the_modules_mode(b0):
    b0.eval()
    assert not as_segmenter(b0).training
    b0.train()
    try:
        assert as_segmenter(b0).training
    finally:
        b0.eval()


def test_features_are_the_modules_taps_of_the_preprocessed_input(b0):
    seg = as_segmenter(b0)
    x = torch.rand(1, 3, 64, 64)
    feats = seg.features(x, ["stage2", "logits"])
    with torch.no_grad():
        direct = b0.features(normalize(x * 255), ["stage2", "logits"])
    assert list(feats) == ["stage2", "logits"]
    torch.testing.assert_close(feats["stage2"], direct["stage2"], rtol=1e-5, atol=1e-5)
    with pytest.raises(ConfigError) as err:
        seg.features(x, ["stage9"])
    one_line_error(err, "stage9", "stage1")


class Recorder(Segmenter):
    """A Segmenter whose network is a fixed 1×1 conv; it records the input sizes its network sees."""

    def __init__(self, preprocess: Preprocess, classes: int = 3) -> None:
        conv = torch.nn.Conv2d(3, classes, 1)
        torch.manual_seed(1)
        torch.nn.init.normal_(conv.weight)
        super().__init__(conv, name="rec", family="test", display_name="rec", num_classes=classes,
                         preprocess=preprocess, taps=())
        self.sizes = []

    def logits(self, x):
        self.sizes.append(tuple(x.shape[-2:]))
        return self.module(x)[..., ::2, ::2]  # at half resolution, as many networks' logits are


def test_bgr_mean_std_on_the_0_1_scale_by_hand():
    pre = Preprocess(mean=(0.1, 0.2, 0.3), std=(0.5, 0.25, 0.125), scale=1, channels="BGR")
    x = torch.rand(1, 3, 4, 5)
    out = pre.apply(x)
    for c_out, c_in in enumerate((2, 1, 0)):
        expected = (x[0, c_in] - pre.mean[c_out]) / pre.std[c_out]
        torch.testing.assert_close(out[0, c_out], expected)
    torch.testing.assert_close(pre.apply(x * 255, scale=255), out)  # the same images on 0–255


def test_the_network_sees_sides_rounded_up_to_the_divisor_and_logits_come_back_at_the_input_size():
    seg = Recorder(Preprocess(size_divisor=32))
    out = seg(torch.rand(2, 3, 50, 70))
    assert seg.sizes == [(64, 96)]
    assert out.shape == (2, 3, 50, 70)


@pytest.mark.parametrize("fields, message", [
    ({"mean": [1, 2]}, "preprocess.mean must be three finite numbers"),
    ({"std": [1, 0, 1]}, "preprocess.std must be positive"),
    ({"scale": 100}, "preprocess.scale must be 1"),
    ({"channels": "RGBA"}, "preprocess.channels must be RGB or BGR"),
    ({"size_divisor": 0}, "preprocess.size_divisor must be a whole number"),
])
def test_bad_preprocessing_is_one_line(fields, message):
    with pytest.raises(ConfigError) as err:
        Preprocess(**fields)
    one_line_error(err, message)


def test_class_map_merges_by_logsumexp_and_drops_and_fills_by_hand():
    seg = Recorder(Preprocess(), classes=4)
    x = torch.rand(1, 3, 8, 8)
    raw = seg.network(x)
    mapping = resolve_class_map({0: 0, 1: 0, 2: 2, 3: None}, 4, None, 3, None, "class_map")
    seg.with_class_map(mapping)
    out = seg.network(x)
    assert seg.num_classes == 3 and out.shape[1] == 3
    torch.testing.assert_close(out[:, 0], torch.log(raw[:, 0].exp() + raw[:, 1].exp()))
    assert torch.all(out[:, 1] == UNMAPPED_LOGIT)  # no model class maps to dataset class 1
    torch.testing.assert_close(out[:, 2], raw[:, 2])
    probs = out.softmax(1)  # the merged class's probability is the sum, the dropped class left the softmax
    kept = raw[:, [0, 1, 2]].softmax(1)
    torch.testing.assert_close(probs[:, 0], kept[:, 0] + kept[:, 1], rtol=1e-5, atol=1e-6)


def test_class_map_by_names_and_a_permutation_is_an_exact_selection():
    seg = Recorder(Preprocess(), classes=3)
    x = torch.rand(1, 3, 8, 8)
    raw = seg.network(x)
    seg.with_class_map(resolve_class_map({"cat": "b", "dog": "a", "cow": "c"}, 3, ["cat", "dog", "cow"], 3,
                                         ["a", "b", "c"], "class_map"))
    assert torch.equal(seg.network(x), raw[:, [1, 0, 2]])


@pytest.mark.parametrize("mapping, message", [
    ({"horse": 0}, "'horse' is not a model class"),
    ({0: "sky"}, "'sky' is not a dataset class"),
    ({0: None, 1: "ignore"}, "drops every model class"),
    ({7: 0}, "7 is not a model class (indices 0–2"),
])
def test_bad_class_maps_are_one_line(mapping, message):
    with pytest.raises(ConfigError) as err:
        resolve_class_map(mapping, 3, ["cat", "dog", "cow"], 2, ["a", "b"], "models[0].class_map")
    one_line_error(err, "models[0].class_map", message)


def test_open_model_refuses_a_class_count_that_differs_from_the_datasets(tmp_path):
    sb.save_model(sb.build_model("b0", 5), tmp_path / "b0.pt")
    with pytest.raises(ConfigError) as err:
        sb.open_model({"name": "B0", "checkpoint": str(tmp_path / "b0.pt")}, num_classes=19)
    one_line_error(err, "B0", "predicts 5 classes", "has 19", "class_map")
    seg = sb.open_model({"name": "B0", "checkpoint": str(tmp_path / "b0.pt"), "class_map": {0: 0, 4: 18}},
                        num_classes=19)
    assert seg(torch.rand(1, 3, 32, 32)).shape == (1, 19, 32, 32)


def test_open_model_reads_a_checkpoint_path(tmp_path):
    model = sb.build_model("b0", 19)
    sb.save_model(model, tmp_path / "b0.pt")
    seg = sb.open_model(tmp_path / "b0.pt")
    assert seg.family == "segformer" and seg.num_classes == 19 and not seg.training
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(seg(x), as_segmenter(model.eval())(x))
