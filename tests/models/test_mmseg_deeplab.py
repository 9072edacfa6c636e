"""mmsegmentation's released DeepLabV3+ checkpoints, loaded without mmseg, against oracles written out here.

* the layout: ``mmseg_shapes`` below generates every tensor name and shape of an mmseg DeepLabV3+ state dict from
  mmseg's own module rules (read from its ``ResNet._make_stem_layer`` / ``ResNetV1c``, ``ResLayer``,
  ``ASPPHead``, ``DepthwiseSeparableASPPHead``, ``FCNHead``, ``BaseDecodeHead`` and mmcv's ``ConvModule`` /
  ``DepthwiseSeparableConvModule``), independently of the package's renaming table; the files are written as
  mmcv writes them (``torch.save({'meta': ..., 'state_dict': ...})``) with random values, and each tensor must
  come out where mmseg's module of that name sits in this package's model;
* the deep stem's numerics: a functional re-implementation of ResNetV1c's stem (``F.conv2d``,
  ``F.batch_norm``, ReLU, ``F.max_pool2d``) on the file's own tensors;
* the atrous rates and output stride: configs written in mmcv's ``pretty_text`` form.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F

import segformer_bench as sb
from segformer_bench.errors import CheckpointError, UserError
from segformer_bench.models.checkpoints import load_model, read_checkpoint
from segformer_bench.models.checkpoints.mmseg import mmseg_to_ours
from segformer_bench.models.checkpoints.pretrained import load_torchvision_resnet
from segformer_bench.models.deeplab import DeepLabConfig, DeepLabV3Plus

from ..helpers import cli_error
from .test_deeplab import shape_writers, torchvision_shapes

BLOCKS = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3)}  # mmseg ResNet.arch_settings (Bottleneck)
K, C, C1 = 5, 32, 8  # small classes and head widths keep the files small; the backbone is a real ResNet-50

# The model part of mmcv's Config.pretty_text for configs/deeplabv3plus/deeplabv3plus_r101-d8_512x1024_80k_cityscapes.py
# (mmseg 0.x, _base_/models/deeplabv3plus_r50-d8.py with depth=101), as mmcv stores it in meta['config'].
CONFIG_D8 = """norm_cfg = dict(type='SyncBN', requires_grad=True)
model = dict(
    type='EncoderDecoder',
    pretrained='open-mmlab://resnet101_v1c',
    backbone=dict(
        type='ResNetV1c',
        depth=101,
        num_stages=4,
        out_indices=(0, 1, 2, 3),
        dilations=(1, 1, 2, 4),
        strides=(1, 2, 1, 1),
        norm_cfg=dict(type='SyncBN', requires_grad=True),
        norm_eval=False,
        style='pytorch',
        contract_dilation=True),
    decode_head=dict(
        type='DepthwiseSeparableASPPHead',
        in_channels=2048,
        in_index=3,
        channels=512,
        dilations=(1, 12, 24, 36),
        c1_in_channels=256,
        c1_channels=48,
        dropout_ratio=0.1,
        num_classes=19,
        norm_cfg=dict(type='SyncBN', requires_grad=True),
        align_corners=False,
        loss_decode=dict(
            type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)),
    auxiliary_head=dict(
        type='FCNHead',
        in_channels=1024,
        in_index=2,
        channels=256,
        num_convs=1,
        concat_input=False,
        dropout_ratio=0.1,
        num_classes=19,
        norm_cfg=dict(type='SyncBN', requires_grad=True),
        align_corners=False,
        loss_decode=dict(
            type='CrossEntropyLoss', use_sigmoid=False, loss_weight=0.4)),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))
dataset_type = 'CityscapesDataset'
"""


def mmseg_shapes(depth: int, deep_stem: bool, num_classes: int = K, channels: int = C, c1: int = C1,
                 dilations: tuple[int, ...] = (1, 12, 24, 36), aux: bool = True) -> dict[str, tuple[int, ...]]:
    """Every tensor of mmseg's EncoderDecoder(ResNetV1c or ResNet, DepthwiseSeparableASPPHead, FCNHead) with its
    shape, from mmseg's module names:

    * stem: ``deep_stem`` → ``stem`` = Sequential(conv 3→32 s2, BN, ReLU, conv 32→32, BN, ReLU, conv 32→64, BN,
      ReLU), so convs at 0/3/6 and BNs at 1/4/7; otherwise ``conv1`` (7×7) and ``bn1`` (``norm1_name``);
    * ``layer{i}`` = ResLayer of Bottlenecks (planes 64·2^i, expansion 4): ``conv1/bn1/conv2/bn2/conv3/bn3``; the
      first block's ``downsample`` = Sequential(conv 1×1, BN) (avg_down=False: no pooling in front);
    * decode_head: ``image_pool`` = Sequential(AdaptiveAvgPool2d, ConvModule 1×1) → index 1; ``aspp_modules``
      index 0 a 1×1 ConvModule, the others DepthwiseSeparableConvModules (``depthwise_conv`` 3×3 groups=in,
      ``pointwise_conv`` 1×1, each a ConvModule); ``bottleneck`` 3×3 ConvModule on (len(dilations)+1)·channels;
      ``c1_bottleneck`` 1×1 ConvModule 256→c1; ``sep_bottleneck`` two separable modules; ``conv_seg`` 1×1 with
      bias;
    * auxiliary_head (FCNHead num_convs=1, concat_input=False): ``convs.0`` 3×3 ConvModule 1024→256, ``conv_seg``.

    A ConvModule with a norm has ``conv`` (no bias) and ``bn``; a BN has weight, bias, running_mean, running_var
    and a scalar num_batches_tracked.
    """
    shapes: dict[str, tuple[int, ...]] = {}
    conv, bn = shape_writers(shapes)

    def conv_module(name: str, out: int, inp: int, k: int, groups: int = 1) -> None:
        conv(f"{name}.conv", out, inp // groups, k)
        bn(f"{name}.bn", out)

    def separable(name: str, out: int, inp: int) -> None:
        conv_module(f"{name}.depthwise_conv", inp, inp, 3, groups=inp)
        conv_module(f"{name}.pointwise_conv", out, inp, 1)

    if deep_stem:
        for index, (out, inp) in zip((0, 3, 6), ((32, 3), (32, 32), (64, 32)), strict=True):
            conv(f"backbone.stem.{index}", out, inp, 3)
            bn(f"backbone.stem.{index + 1}", out)
    # the rest of the backbone: torchvision's names (mmseg's ResNet keeps them) under backbone., without fc
    stem = ("conv1.", "bn1.") if deep_stem else ()
    shapes.update({f"backbone.{k}": v for k, v in torchvision_shapes(depth).items()
                   if not k.startswith(("fc.", *stem))})
    conv_module("decode_head.image_pool.1", channels, 2048, 1)
    for n, d in enumerate(dilations):
        if d == 1:
            conv_module(f"decode_head.aspp_modules.{n}", channels, 2048, 1)
        else:
            separable(f"decode_head.aspp_modules.{n}", channels, 2048)
    conv_module("decode_head.bottleneck", channels, (len(dilations) + 1) * channels, 3)
    conv_module("decode_head.c1_bottleneck", c1, 256, 1)
    separable("decode_head.sep_bottleneck.0", channels, channels + c1)
    separable("decode_head.sep_bottleneck.1", channels, channels)
    shapes["decode_head.conv_seg.weight"] = (num_classes, channels, 1, 1)
    shapes["decode_head.conv_seg.bias"] = (num_classes,)
    if aux:
        conv_module("auxiliary_head.convs.0", 256, 1024, 3)
        shapes["auxiliary_head.conv_seg.weight"] = (num_classes, 256, 1, 1)
        shapes["auxiliary_head.conv_seg.bias"] = (num_classes,)
    return shapes


def random_state(shapes: dict[str, tuple[int, ...]], seed: int = 0) -> dict[str, torch.Tensor]:
    """Random tensors of `shapes` (BN variances positive, counters integers), as a trained file has them."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for name, shape in shapes.items():
        if name.endswith("num_batches_tracked"):
            state[name] = torch.tensor(80_000)
        elif name.endswith("running_var"):
            state[name] = 0.5 + torch.rand(shape, generator=g)
        else:
            state[name] = 0.05 * torch.randn(shape, generator=g)
    return state


def save_mmcv(path, state: dict[str, torch.Tensor], config: str | None = CONFIG_D8):
    """A checkpoint as mmcv's save_checkpoint writes it (after mmseg's publish_model drops the optimizer)."""
    meta = {"mmseg_version": "0.5.0+b2724da", "time": "Sat Jun  6 11:41:43 2020",
            "CLASSES": tuple(f"class{k}" for k in range(K)), "PALETTE": [[128, 64, 128]] * K}
    if config is not None:
        meta["config"] = config
    torch.save({"meta": meta, "state_dict": state}, path)
    return path


@pytest.fixture(scope="module")
def deep_state() -> dict[str, torch.Tensor]:
    return random_state(mmseg_shapes(50, deep_stem=True))


@pytest.fixture(scope="module")
def deep_file(tmp_path_factory, deep_state):
    return save_mmcv(tmp_path_factory.mktemp("mmseg") / "deeplabv3plus_r50-d8.pth", deep_state)


def meta_state(shapes: dict[str, tuple[int, ...]]) -> dict[str, torch.Tensor]:
    """Tensors of `shapes` without storage: what the converter needs (names and shapes) at no cost."""
    return {k: torch.empty(s, device="meta") for k, s in shapes.items()}


def test_r101_layouts_map_one_to_one_onto_the_model():
    """Both released R101 layouts: every mmseg tensor has exactly one counterpart of its shape in the model and
    the model has no other tensor. Counted by hand for r101-d8: deep stem 3 convs + 3 BNs (5 tensors each) = 18;
    33 bottlenecks of 3 convs + 3 BNs = 594, plus 4 shortcuts (conv + BN) = 24; head: image pool 6, 1×1 branch 6,
    3 separable branches 36, bottleneck 6, c1 6, 2 separable decoder convs 24, conv_seg 2 = 86; FCN head 8: 730."""
    for deep, count in ((True, 730), (False, 730 - 18 + 6)):
        shapes = mmseg_shapes(101, deep_stem=deep, num_classes=19, channels=512, c1=48)
        assert len(shapes) == count
        assert len({k.split(".")[2] for k in shapes if k.startswith("backbone.layer3.")}) == 23
        ours, config = mmseg_to_ours(meta_state(shapes), {"config": CONFIG_D8}, "r101.pth")
        assert config == {"arch": "deeplabv3plus", "depth": 101, "num_classes": 19, "output_stride": 8,
                          "aspp_rates": [12, 24, 36], "channels": 512, "c1_channels": 48, "dropout": 0.1,
                          **({"stem": "deep"} if deep else {}), "aux_head": True}
        with torch.device("meta"):
            model = DeepLabV3Plus(DeepLabConfig.from_dict(config))
        expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
        assert {k: tuple(v.shape) for k, v in ours.items()} == expected


def test_deep_stem_file_loads_every_tensor_where_mmseg_has_it(deep_file, deep_state):
    model = load_model(deep_file)
    assert isinstance(model, DeepLabV3Plus) and not model.training
    assert model.config == DeepLabConfig(depth=50, num_classes=K, channels=C, c1_channels=C1, stem="deep",
                                         aux_head=True)
    # mmseg module → this package's module, by value
    pairs = {
        "backbone.stem.0.weight": model.encoder.stem[0].weight,  # the first deep-stem conv
        "backbone.stem.4.running_var": model.encoder.stem[4].running_var,
        "backbone.stem.6.weight": model.encoder.stem[6].weight,
        "backbone.layer3.5.conv2.weight": model.encoder.layer3[5].conv2.weight,
        "backbone.layer4.0.downsample.1.running_mean": model.encoder.layer4[0].downsample[1].running_mean,
        "decode_head.image_pool.1.conv.weight": model.head.image_pool.conv.weight,
        "decode_head.aspp_modules.0.bn.bias": model.head.aspp[0].bn.bias,
        "decode_head.aspp_modules.2.depthwise_conv.conv.weight": model.head.aspp[2].depthwise.conv.weight,
        "decode_head.aspp_modules.3.pointwise_conv.bn.weight": model.head.aspp[3].pointwise.bn.weight,
        "decode_head.bottleneck.conv.weight": model.head.bottleneck.conv.weight,
        "decode_head.c1_bottleneck.conv.weight": model.head.c1_proj.conv.weight,
        "decode_head.sep_bottleneck.0.depthwise_conv.conv.weight": model.head.fuse[0].depthwise.conv.weight,
        "decode_head.sep_bottleneck.1.pointwise_conv.bn.running_mean": model.head.fuse[1].pointwise.bn.running_mean,
        "decode_head.conv_seg.weight": model.head.classifier.weight,
        "decode_head.conv_seg.bias": model.head.classifier.bias,
        "auxiliary_head.convs.0.conv.weight": model.aux_head.conv.conv.weight,
        "auxiliary_head.convs.0.bn.running_var": model.aux_head.conv.bn.running_var,
        "auxiliary_head.conv_seg.bias": model.aux_head.classifier.bias,
    }
    for theirs, ours in pairs.items():
        assert torch.equal(ours, deep_state[theirs]), theirs
    # every value landed: as many tensors, and the same sum over all of them (fresh weights would differ)
    own = model.state_dict()
    assert len(own) == len(deep_state)
    assert math_sum(own) == pytest.approx(math_sum(deep_state), rel=1e-9)
    assert int(model.encoder.stem[1].num_batches_tracked) == 80_000


def math_sum(state: dict[str, torch.Tensor]) -> float:
    return sum(float(v.double().sum()) for v in state.values())


def test_deep_stem_forward_matches_a_functional_resnet_v1c_stem(deep_file, deep_state):
    """stage1 = layer1(stem(x)); the stem re-computed here from the file's tensors with torch.nn.functional, fed
    to the model's own layer1 (whose numerics tests/models/test_deeplab.py checks against transformers)."""
    model = load_model(deep_file)
    x = torch.randn(2, 3, 37, 50)
    y = x
    for conv, norm, stride in ((0, 1, 2), (3, 4, 1), (6, 7, 1)):
        s = {k: deep_state[f"backbone.stem.{norm}.{k}"] for k in ("weight", "bias", "running_mean", "running_var")}
        y = F.conv2d(y, deep_state[f"backbone.stem.{conv}.weight"], stride=stride, padding=1)
        y = F.relu(F.batch_norm(y, s["running_mean"], s["running_var"], s["weight"], s["bias"], training=False,
                                eps=1e-5))
    y = F.max_pool2d(y, 3, stride=2, padding=1)
    assert y.shape == (2, 64, 10, 13)  # ceil(37/4), ceil(50/4)
    with torch.no_grad():
        expected = model.encoder.layer1(y)
        got = model.features(x, ["stage1"])["stage1"]
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)


def test_torchvision_stem_file_r101b_layout(tmp_path):
    state = random_state(mmseg_shapes(50, deep_stem=False), seed=1)
    config = CONFIG_D8.replace("type='ResNetV1c'", "type='ResNet'")
    model = load_model(save_mmcv(tmp_path / "deeplabv3plus_r50b-d8.pth", state, config))
    assert model.config.stem == "torchvision" and not hasattr(model.encoder, "stem")
    assert torch.equal(model.encoder.conv1.weight, state["backbone.conv1.weight"])
    assert torch.equal(model.encoder.bn1.running_mean, state["backbone.bn1.running_mean"])
    assert torch.equal(model.encoder.layer2[3].bn3.weight, state["backbone.layer2.3.bn3.weight"])
    assert len(model.state_dict()) == len(state)


def test_aux_head_kept_by_default_dropped_on_request_and_never_in_the_output(deep_file):
    kept = load_model(deep_file)
    dropped = load_model(deep_file, aux_head=False)
    assert kept.config.aux_head and kept.aux_head is not None
    assert not dropped.config.aux_head and dropped.aux_head is None
    assert not any(k.startswith("aux_head.") for k in dropped.state_dict())
    assert len(kept.state_dict()) - len(dropped.state_dict()) == 8  # FCNHead: conv + BN (5) + conv_seg (2)
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        out = kept(x)
        assert torch.equal(out, dropped(x))
        logits, aux = kept(x, aux=True)
    assert torch.equal(logits, out)
    assert aux.shape == (1, K, 8, 8)  # layer3, output stride 8
    with pytest.raises(CheckpointError, match="has no auxiliary head"):
        load_model(sb.save_model(dropped, deep_file.parent / "plain.pt"), aux_head=True)


def test_a_loaded_model_saves_and_reloads_with_its_stem_and_aux_head(deep_file, tmp_path):
    model = load_model(deep_file)
    again = load_model(sb.save_model(model, tmp_path / "ours.pt"))
    assert again.config == model.config
    saved = torch.load(tmp_path / "ours.pt", map_location="cpu", weights_only=True)["config"]
    assert saved["stem"] == "deep" and saved["aux_head"] is True
    for k, v in model.state_dict().items():
        assert torch.equal(again.state_dict()[k], v), k


def test_default_config_records_the_fields_it_always_recorded():
    """Checkpoints and stored runs made before the stem and the aux head existed compare equal to today's."""
    assert DeepLabConfig().to_dict() == {"arch": "deeplabv3plus", "depth": 50, "num_classes": 19,
                                         "output_stride": 8, "aspp_rates": [12, 24, 36], "channels": 512,
                                         "c1_channels": 48, "dropout": 0.1}
    old = {"arch": "deeplabv3plus", "depth": 101, "num_classes": 19, "output_stride": 8,
           "aspp_rates": [12, 24, 36], "channels": 512, "c1_channels": 48, "dropout": 0.1}
    assert DeepLabConfig.from_dict(old) == DeepLabConfig(depth=101)
    with pytest.raises(UserError, match="stem must be one of torchvision, deep"):
        DeepLabConfig(stem="v1d")


@pytest.mark.parametrize(("change", "message"), [
    (lambda s: s.update({"decode_head.extra_conv.weight": torch.zeros(1)}),
     r"tensors no DeepLabV3\+ here has: decode_head.extra_conv.weight"),
    (lambda s: s.update({"backbone.layer1.0.conv4.weight": torch.zeros(256, 64, 1, 1)}),
     r"1 unexpected \(encoder.layer1.0.conv4.weight"),
    (lambda s: s.pop("backbone.layer2.1.bn2.running_var"), r"1 missing \(encoder.layer2.1.bn2.running_var"),
    (lambda s: s.pop("decode_head.sep_bottleneck.0.pointwise_conv.bn.num_batches_tracked"),
     r"1 missing \(head.fuse.0.pointwise.bn.num_batches_tracked"),
    (lambda s: s.update({"decode_head.c1_bottleneck.conv.weight": torch.zeros(C1, 128, 1, 1)}),
     r"mis-shaped \(head.c1_proj.conv.weight \(8, 128, 1, 1\) vs model \(8, 256, 1, 1\)"),
])
def test_strict_every_tensor_used_or_one_line_naming_the_file(tmp_path, deep_state, change, message):
    state = dict(deep_state)
    change(state)
    path = save_mmcv(tmp_path / "bad.pth", state)
    with pytest.raises(CheckpointError, match=message) as err:
        load_model(path)
    assert str(err.value).startswith(str(path)) and "\n" not in str(err.value)


def test_convert_an_mmseg_file_to_ours_or_one_line(deep_file, deep_state, tmp_path, capsys):
    from segformer_bench.cli import main

    assert main(["convert", str(deep_file), "--out", str(tmp_path / "ours.pt"), "--format", "segformer-bench"]) == 0
    assert load_model(tmp_path / "ours.pt").config.stem == "deep"
    bad = save_mmcv(tmp_path / "bad.pth", {k: v for k, v in deep_state.items() if k != "backbone.stem.0.weight"})
    text = cli_error(["convert", str(bad), "--out", str(tmp_path / "out.pt"), "--format", "segformer-bench"], capsys)
    assert "bad.pth" in text and "encoder.stem.0.weight" in text and not (tmp_path / "out.pt").exists()


D16 = CONFIG_D8.replace("dilations=(1, 1, 2, 4)", "dilations=(1, 1, 1, 2)").replace(
    "strides=(1, 2, 1, 1)", "strides=(1, 2, 2, 1)").replace("dilations=(1, 12, 24, 36)", "dilations=(1, 6, 12, 18)")


@pytest.mark.parametrize(("config", "fields"), [
    (CONFIG_D8, {"output_stride": 8, "aspp_rates": [12, 24, 36]}),
    (D16, {"output_stride": 16, "aspp_rates": [6, 12, 18]}),
    (None, {"output_stride": 8, "aspp_rates": [12, 24, 36]}),  # no config in the meta: a released -d8 model
    # mmcv's oldest files join several files' texts, with their paths between them: not Python, so the d8 default
    ("/configs/_base_/models/deeplabv3plus_r50-d8.py\n" + CONFIG_D8, {"output_stride": 8}),
    (CONFIG_D8.replace("dropout_ratio=0.1", "dropout_ratio=0.2", 1), {"dropout": 0.2}),  # the decode head's
])
def test_rates_and_output_stride_come_from_the_meta_config(config, fields):
    shapes = mmseg_shapes(50, deep_stem=True)
    _, found = mmseg_to_ours(meta_state(shapes), None if config is None else {"config": config}, "x.pth")
    assert {k: found[k] for k in fields} == fields


@pytest.mark.parametrize(("config", "message"), [
    (D16.replace("contract_dilation=True", "multi_grid=(1, 2, 4),\n        contract_dilation=True"),
     r"multi_grid \(1, 2, 4\).*no multi-grid"),
    (CONFIG_D8.replace("        contract_dilation=True),", "        ),"), "contract_dilation False"),
    (CONFIG_D8.replace("strides=(1, 2, 1, 1)", "strides=(1, 2, 2, 2)"), "output stride 8"),
    (CONFIG_D8.replace("align_corners=False,\n        loss_decode=dict(\n            type='CrossEntropyLoss', "
                       "use_sigmoid=False, loss_weight=1.0)", "align_corners=True", 1), "align_corners=True"),
    (CONFIG_D8.replace("dilations=(1, 12, 24, 36)", "dilations=(1, 12, 24)"), "3 atrous ASPP branches"),
])
def test_a_config_this_model_cannot_follow_is_one_line(config, message):
    shapes = mmseg_shapes(50, deep_stem=True)
    with pytest.raises(CheckpointError, match=message) as err:
        mmseg_to_ours(meta_state(shapes), {"config": config}, "x.pth")
    assert str(err.value).startswith("x.pth: ") and "\n" not in str(err.value)


def test_the_config_text_is_read_never_run(tmp_path, deep_state):
    marker = tmp_path / "ran"
    config = (f"model = dict(backbone=dict(type=__import__('os').system('touch {marker}')),\n"
              f"             decode_head=dict(dilations=(1, 12, 24, 36)))\n"
              f"__import__('os').system('touch {marker}')\n")
    model = load_model(save_mmcv(tmp_path / "hostile.pth", deep_state, config))
    assert model.config.aspp_rates == (12, 24, 36)
    assert not marker.exists()


def test_other_mmseg_heads_are_refused_by_name(tmp_path):
    state = {"backbone.layer1.0.conv1.weight": torch.zeros(64, 64, 1, 1),
             "decode_head.aspp_modules.1.conv.weight": torch.zeros(8, 2048, 3, 3),
             "decode_head.bottleneck.conv.weight": torch.zeros(8, 40, 3, 3)}
    with pytest.raises(CheckpointError, match=r"ASPPHead \(DeepLabV3\).*only mmseg's DeepLabV3\+ loads"):
        read_checkpoint(save_mmcv(tmp_path / "deeplabv3_r50-d8.pth", state))


def test_an_mmseg_file_starts_a_deep_stem_encoder(deep_file, deep_state):
    model = sb.build_model("deeplabv3plus-r50", 3, stem="deep")
    n = load_torchvision_resnet(model, deep_file)
    assert n == sum(k.startswith("backbone.") for k in deep_state)
    assert torch.equal(model.encoder.stem[3].weight, deep_state["backbone.stem.3.weight"])
    assert model.config == dataclasses.replace(DeepLabConfig(num_classes=3), stem="deep")
