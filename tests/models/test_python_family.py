"""The ``python`` family: a user's factory, written here as a user writes one (a module on PYTHONPATH), with the
shapes of torchvision's and segmentation_models_pytorch's models (a dict with ``out`` at full resolution; a plain
tensor; BGR input on 0–255), which cannot be imported on these machines (REFERENCE §9). The oracle is the module
itself run by hand on the hand-preprocessed input."""

import textwrap

import pytest
import torch
import torch.nn.functional as F
import yaml

import segformer_bench as sb
from segformer_bench.errors import CheckpointError, UserError
from tests.helpers import cli_error, one_line_error

USER_CODE = textwrap.dedent('''
    from collections import OrderedDict

    import torch
    import torch.nn.functional as F
    from torch import nn


    class TorchvisionLike(nn.Module):
        """Like torchvision's segmentation models: a dict with 'out' and 'aux', both at the input resolution."""

        def __init__(self, num_classes=19, width=8):
            super().__init__()
            self.backbone = nn.Sequential(OrderedDict(
                layer1=nn.Sequential(nn.Conv2d(3, width, 3, stride=2, padding=1), nn.ReLU()),
                layer2=nn.Sequential(nn.Conv2d(width, 2 * width, 3, stride=2, padding=1), nn.ReLU())))
            self.classifier = nn.Sequential(nn.Conv2d(2 * width, width, 3, padding=1), nn.ReLU(),
                                            nn.Conv2d(width, num_classes, 1))
            self.aux_classifier = nn.Conv2d(2 * width, num_classes, 1)

        def forward(self, x):
            size = x.shape[-2:]
            f = self.backbone(x)
            up = lambda t: F.interpolate(t, size=size, mode="bilinear", align_corners=False)
            return {"out": up(self.classifier(f)), "aux": up(self.aux_classifier(f))}


    def torchvision_like(num_classes=19, width=8):
        return TorchvisionLike(num_classes, width)


    class Plain(nn.Module):
        """A plain tensor of full-resolution logits; sides must be multiples of 8 (like smp's 32)."""

        def __init__(self, classes):
            super().__init__()
            self.encoder = nn.Conv2d(3, 4, 3, padding=1)
            self.head = nn.Conv2d(4, classes, 1)

        def forward(self, x):
            assert x.shape[-2] % 8 == 0 and x.shape[-1] % 8 == 0, "input sides must be divisible by 8"
            return self.head(torch.relu(self.encoder(x)))


    def plain(classes=19):
        return Plain(classes)


    def broken(**options):
        raise RuntimeError("weights server unreachable")


    def not_a_module():
        return 42


    class Flat(nn.Module):
        def forward(self, x):
            return x.mean(dim=(2, 3))


    def flat():
        return Flat()
''')

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


@pytest.fixture()
def user_code(tmp_path, monkeypatch):
    (tmp_path / "user_models.py").write_text(USER_CODE)
    monkeypatch.syspath_prepend(str(tmp_path))
    import importlib
    import sys

    sys.modules.pop("user_models", None)
    yield importlib.import_module("user_models")
    sys.modules.pop("user_models", None)


def torchvision_entry(**changes):
    entry = {"name": "TV", "family": "python", "factory": "user_models:torchvision_like",
             "options": {"num_classes": 19, "width": 8}, "preprocess": {"mean": list(MEAN), "std": list(STD)},
             "output": {"key": "out", "stride": 1},
             "taps": {"stage1": "backbone.layer1", "stage2": "backbone.layer2", "fused": "classifier.1"}}
    return entry | changes


def by_hand(module, x, mean=MEAN, std=STD, bgr=False, scale=1.0):
    x = x.flip(1) if bgr else x
    m = torch.tensor(mean).view(1, 3, 1, 1)
    s = torch.tensor(std).view(1, 3, 1, 1)
    return (x * scale - m) / s


def test_a_torchvision_shaped_factory_runs_with_its_declared_preprocessing(user_code, tmp_path):
    torch.manual_seed(0)
    reference = user_code.torchvision_like(19, 8).eval()
    torch.save(reference.state_dict(), tmp_path / "tv.pt")
    seg = sb.open_model(torchvision_entry(checkpoint=str(tmp_path / "tv.pt")), num_classes=19)
    assert (seg.family, seg.num_classes, seg.name) == ("python", 19, "TV")
    x = torch.rand(2, 3, 36, 52, requires_grad=True)
    logits = seg(x)
    with torch.no_grad():
        expected = reference(by_hand(reference, x))["out"]
    assert logits.shape == (2, 19, 36, 52) and logits.dtype == torch.float32
    torch.testing.assert_close(logits.detach(), expected, rtol=1e-5, atol=1e-5)
    logits.sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_taps_are_the_named_modules_outputs_with_gradients_to_the_input(user_code, tmp_path):
    torch.manual_seed(0)
    reference = user_code.torchvision_like(19, 8).eval()
    torch.save({"state_dict": reference.state_dict()}, tmp_path / "tv.pt")  # a wrapped state dict
    seg = sb.open_model(torchvision_entry(checkpoint=str(tmp_path / "tv.pt")))
    assert seg.taps == ("stage1", "stage2", "fused", "logits")
    x = torch.rand(1, 3, 32, 32, requires_grad=True)
    feats = seg.features(x, ["stage2", "fused", "logits"])
    with torch.no_grad():
        xn = by_hand(reference, x)
        stage2 = reference.backbone(xn)
        fused = reference.classifier[1](reference.classifier[0](stage2))
    torch.testing.assert_close(feats["stage2"].detach(), stage2, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(feats["fused"].detach(), fused, rtol=1e-5, atol=1e-6)
    assert feats["logits"].shape == (1, 19, 32, 32)
    (grad,) = torch.autograd.grad(feats["stage2"][0, :, 4, 4].sum(), x)
    assert grad.abs().sum() > 0 and grad[..., 20:, 20:].abs().sum() == 0  # a receptive field, not the image


def test_bgr_on_0_255_with_a_size_divisor(user_code):
    entry = {"name": "BGR", "family": "python", "factory": "user_models:plain", "options": {"classes": 5},
             "preprocess": {"mean": [103.53, 116.28, 123.675], "std": [57.375, 57.12, 58.395], "scale": 255,
                            "channels": "BGR", "size_divisor": 8}}
    seg = sb.open_model(entry)
    x = torch.rand(1, 3, 30, 45)
    with torch.no_grad():
        xn = by_hand(seg.module, x, (103.53, 116.28, 123.675), (57.375, 57.12, 58.395), bgr=True, scale=255)
        up = F.interpolate(xn, size=(32, 48), mode="bilinear", align_corners=False)
        expected = F.interpolate(seg.module(up), size=(30, 45), mode="bilinear", align_corners=False)
        torch.testing.assert_close(seg(x), expected, rtol=1e-5, atol=1e-5)
    assert seg.min_input_side == 8


def test_the_store_of_a_suite_records_the_factory(user_code, tmp_path, monkeypatch):
    from segformer_bench.bench.runner import run_suite
    from tests.helpers import stored

    suite = {"version": 1, "name": "py", "analyses": ["corruption"],
             "dataset": {"name": "synthcity", "split": "val", "limit": 2, "options": {"size": [32, 64], "length": 2}},
             "models": [torchvision_entry()], "corruptions": {"cells": [["contrast", 1]], "backend": "reference"},
             "device": "cpu", "reports": ["tables"], "report_dir": str(tmp_path / "report")}
    path = tmp_path / "py.yaml"
    path.write_text(yaml.safe_dump(suite))
    monkeypatch.chdir(tmp_path)
    run_suite(sb.bench.suite.load_suite(str(path)), tmp_path / "run", progress=False, log=lambda _: None)
    models = stored(tmp_path / "run", lambda store: store.models())
    assert models["TV"]["config"]["factory"] == "user_models:torchvision_like"
    assert models["TV"]["sha256"] == ""  # no weights file: the suite's fields identify it
    assert "TV" in (tmp_path / "report" / "table.md").read_text()


@pytest.mark.parametrize("changes, message", [
    ({"factory": "no_such_module:build"}, "cannot import 'no_such_module'"),
    ({"factory": "user_models:missing"}, "'user_models' has no 'missing'"),
    ({"factory": "user_models:broken", "options": {}}, "raised RuntimeError: weights server unreachable"),
    ({"factory": "user_models:not_a_module", "options": {}}, "returned a int, not a torch nn.Module"),
    ({"factory": "user_models:flat", "options": {}, "output": {}, "taps": {}}, "is not (B, K, h, w) float logits"),
    ({"output": {}}, "returns a dict with keys out, aux; name the logits"),
    ({"output": {"key": "logits"}}, "output.key 'logits'"),
    ({"output": {"key": "out", "stride": 4}}, "output.stride 4"),
    ({"output": {"size": 3}}, "unknown field(s) size"),
    ({"taps": {"stage1": "backbone.layer9"}}, "has no module 'backbone.layer9'"),
    ({"factory": "user_models.torchvision_like"}, "write it as 'package.module:function'"),
    ({"preprocess": {"mean": [0.5]}}, "preprocess: field 'mean': expected a list of 3 values"),
    ({"path": "somewhere"}, "do not apply to family 'python'"),
])
def test_bad_python_entries_are_one_line_naming_the_entry(user_code, changes, message):
    with pytest.raises(UserError) as err:
        sb.open_model(torchvision_entry(**changes))
    one_line_error(err, message)


def test_a_checkpoint_that_does_not_fit_the_factorys_model(user_code, tmp_path):
    torch.save(user_code.torchvision_like(19, 4).state_dict(), tmp_path / "narrow.pt")
    with pytest.raises(CheckpointError) as err:
        sb.open_model(torchvision_entry(checkpoint=str(tmp_path / "narrow.pt")))
    one_line_error(err, "narrow.pt", "mis-shaped", "user_models:torchvision_like")


def test_a_wrong_class_count_without_a_class_map(user_code):
    with pytest.raises(UserError) as err:
        sb.open_model(torchvision_entry(options={"num_classes": 7, "width": 8}), num_classes=19)
    one_line_error(err, "TV", "predicts 7 classes", "has 19")


def test_validate_imports_the_factory_and_names_the_field(user_code, tmp_path, capsys):
    suite = {"version": 1, "name": "py", "dataset": {"name": "synthcity", "split": "val"},
             "models": [torchvision_entry(factory="user_models:nothing_here")], "device": "cpu"}
    path = tmp_path / "py.yaml"
    path.write_text(yaml.safe_dump(suite))
    message = cli_error(["validate", str(path)], capsys)
    assert "models[0]" in message and "'user_models' has no 'nothing_here'" in message


def test_run_of_a_suite_whose_model_has_other_classes_is_one_line_and_stores_nothing(user_code, tmp_path, capsys):
    suite = {"version": 1, "name": "py", "analyses": ["corruption"],
             "dataset": {"name": "synthcity", "split": "val", "limit": 1, "options": {"size": [32, 64], "length": 1}},
             "models": [torchvision_entry(options={"num_classes": 7, "width": 8})],
             "corruptions": {"cells": [["contrast", 1]]}, "device": "cpu", "reports": ["tables"]}
    path = tmp_path / "py.yaml"
    path.write_text(yaml.safe_dump(suite))
    message = cli_error(["run", str(path), "--run-dir", str(tmp_path / "run")], capsys)
    assert "models[0] (TV): the model predicts 7 classes but the dataset has 19" in message
    from tests.helpers import stored

    assert stored(tmp_path / "run", lambda store: store.models()) == {}
