"""The optional ``mmseg`` family. mmsegmentation cannot be installed here (REFERENCE §9), so the adapter is tested
against a stand-in package with the parts of mmseg 1.x's API it calls (``mmseg.apis.init_model`` returning an
``EncoderDecoder`` with ``cfg``, ``dataset_meta``, ``backbone``, ``decode_head.conv_seg`` and ``encode_decode``);
the real library is not exercised, and the README says so."""

import sys
import textwrap

import pytest
import torch

import segformer_bench as sb
from segformer_bench.errors import UserError
from tests.helpers import one_line_error

FAKE_APIS = textwrap.dedent('''
    import torch
    import torch.nn.functional as F
    from torch import nn


    class Backbone(nn.Module):
        def __init__(self):
            super().__init__()
            self.s1 = nn.Conv2d(3, 4, 3, stride=2, padding=1)
            self.s2 = nn.Conv2d(4, 8, 3, stride=2, padding=1)

        def forward(self, x):
            a = torch.relu(self.s1(x))
            return (a, torch.relu(self.s2(a)))


    class Head(nn.Module):
        num_classes = 3

        def __init__(self):
            super().__init__()
            self.fuse = nn.Conv2d(8, 6, 1)
            self.conv_seg = nn.Conv2d(6, 3, 1)

        def forward(self, feats):
            return self.conv_seg(torch.relu(self.fuse(feats[-1])))


    class EncoderDecoder(nn.Module):
        def __init__(self, cfg):
            super().__init__()
            self.cfg = cfg
            self.dataset_meta = {"classes": ("road", "car", "sky")}
            self.backbone = Backbone()
            self.decode_head = Head()

        def encode_decode(self, inputs, batch_img_metas):
            out = self.decode_head(self.backbone(inputs))
            return F.interpolate(out, size=batch_img_metas[0]["img_shape"], mode="bilinear", align_corners=False)


    def init_model(config, checkpoint=None, device="cpu"):
        if not str(config).endswith(".py"):
            raise FileNotFoundError(f"{config} not found")
        torch.manual_seed(0)
        cfg = {"model": {"data_preprocessor": {"mean": [1.0, 2.0, 3.0], "std": [10.0, 20.0, 30.0],
                                               "bgr_to_rgb": False, "size_divisor": 16}}}
        return EncoderDecoder(cfg)
''')


@pytest.fixture()
def fake_mmseg(tmp_path, monkeypatch):
    package = tmp_path / "mmseg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "apis.py").write_text(FAKE_APIS)
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in ("mmseg", "mmseg.apis"):
        sys.modules.pop(name, None)
    yield
    for name in ("mmseg", "mmseg.apis"):
        sys.modules.pop(name, None)


def entry(tmp_path, **changes):
    (tmp_path / "m.pth").write_bytes(b"weights")
    return {"name": "MM", "family": "mmseg", "config": str(tmp_path / "cfg.py"), "checkpoint": str(tmp_path / "m.pth"),
            **changes}


def test_an_mmseg_model_through_its_api(fake_mmseg, tmp_path):
    seg = sb.open_model(entry(tmp_path), num_classes=3)
    assert seg.class_names == ("road", "car", "sky") and seg.taps == ("stage1", "stage2", "fused", "logits")
    x = torch.rand(1, 3, 30, 40)
    with torch.no_grad():  # by hand: BGR (bgr_to_rgb false), mean/std on 0–255, sides up to 16, encode_decode
        xn = (x.flip(1) * 255 - torch.tensor([1.0, 2.0, 3.0]).view(1, 3, 1, 1)) / torch.tensor(
            [10.0, 20.0, 30.0]).view(1, 3, 1, 1)
        up = torch.nn.functional.interpolate(xn, size=(32, 48), mode="bilinear", align_corners=False)
        logits = seg.module.encode_decode(up, [{"img_shape": (32, 48)}])
        expected = torch.nn.functional.interpolate(logits, size=(30, 40), mode="bilinear", align_corners=False)
        torch.testing.assert_close(seg(x), expected)
        feats = seg.network_features(up, ["stage2", "fused"])
        stage2 = seg.module.backbone(up)[1]
    torch.testing.assert_close(feats["stage2"], stage2)
    assert feats["fused"].shape == (1, 6, 8, 12)


def test_mmseg_errors_are_one_line(fake_mmseg, tmp_path):
    with pytest.raises(UserError) as err:
        sb.open_model(entry(tmp_path, config=str(tmp_path / "cfg.txt")))
    one_line_error(err, "mmseg could not build", "cfg.txt")


def test_without_mmseg_installed_the_family_says_what_it_needs(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "mmseg", None)  # import mmseg raises ImportError
    with pytest.raises(UserError) as err:
        sb.open_model(entry(tmp_path))
    one_line_error(err, "needs mmsegmentation 1.x and mmcv installed", "deeplabv3plus family")
