"""DeepLabV3+ (the CNN baseline) against independent oracles.

* parameter counts: torchvision's published ResNet figures (resnet50 25,557,032 and resnet101 44,549,160
  parameters including the 2048×1000 + 1000 ``fc``), and the head counted by hand from a layer list written
  out here from mmseg 0.13's DepthwiseSeparableASPPHead;
* torchvision's state-dict layout, generated from torchvision's naming rules written out below;
* numerics of the ResNet: transformers' ``ResNetModel`` (bottleneck v1.5, the same stem) with its weights
  renamed by hand; and for the dilation, the à-trous identity: a network with output stride 8 (dilated
  layer3/layer4, first block of each at the previous rate) evaluated on every 4th pixel of its last feature is
  exactly the plain stride-32 network on the same weights. A wrong rate anywhere breaks it.
"""

from __future__ import annotations

import dataclasses
import math
import re

import pytest
import torch

import segformer_bench as sb
from segformer_bench.data import build_dataset
from segformer_bench.engine.evaluate import EVAL_PRESETS, evaluate
from segformer_bench.engine.inference import check_input_size
from segformer_bench.engine.train import TRAIN_PRESETS, TrainConfig, param_groups, train
from segformer_bench.errors import CheckpointError, UserError
from segformer_bench.models.checkpoints import load_model, save_model
from segformer_bench.models.checkpoints.pretrained import load_torchvision_resnet
from segformer_bench.models.deeplab import DeepLabConfig, DeepLabV3Plus, ResNet
from segformer_bench.models.registry import variant_name
from segformer_bench.models.segformer import SegFormer

# torchvision.models.resnet{50,101}: parameters including fc (Linear(2048, 1000)), from torchvision's docs.
TORCHVISION_PARAMS = {50: 25_557_032, 101: 44_549_160}
FC_PARAMS = 2048 * 1000 + 1000
BLOCKS = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3)}

# The tiny SynthCity run of tests/test_train.py (TINY), for a DeepLabV3+.
TINY = dataclasses.replace(
    TRAIN_PRESETS["synthcity"], dataset_options={"size": [64, 128], "length": 8}, crop=(64, 64), img_scale=(128, 64),
    iters=2, batch_size=2, workers=0, log_interval=1, checkpoint_interval=2, eval_limit=2, warmup_iters=2,
    model="deeplabv3plus-r50",
)


def shape_writers(shapes: dict[str, tuple[int, ...]]):
    """(conv, bn): add a bias-free k×k conv's weight, or a BatchNorm's five tensors, to `shapes` by name."""
    def conv(name: str, out: int, inp: int, k: int) -> None:
        shapes[f"{name}.weight"] = (out, inp, k, k)

    def bn(name: str, c: int) -> None:
        for leaf in ("weight", "bias", "running_mean", "running_var"):
            shapes[f"{name}.{leaf}"] = (c,)
        shapes[f"{name}.num_batches_tracked"] = ()

    return conv, bn


def torchvision_shapes(depth: int) -> dict[str, tuple[int, ...]]:
    """Every tensor of torchvision's ``resnet{depth}()`` state dict with its shape, from torchvision's rules:
    stem ``conv1`` 7×7 + ``bn1``; ``layer{1..4}`` of Bottlenecks (width 64·2^i, ×4 out) named
    ``conv1/bn1/conv2/bn2/conv3/bn3`` and, in each layer's first block, ``downsample.0`` (1×1) / ``downsample.1``
    (BN); ``fc``. A BN has weight, bias, running_mean, running_var and a scalar num_batches_tracked."""
    shapes: dict[str, tuple[int, ...]] = {}
    conv, bn = shape_writers(shapes)
    conv("conv1", 64, 3, 7)
    bn("bn1", 64)
    inplanes = 64
    for i, (n, planes) in enumerate(zip(BLOCKS[depth], (64, 128, 256, 512), strict=True), start=1):
        for j in range(n):
            p = f"layer{i}.{j}"
            conv(f"{p}.conv1", planes, inplanes, 1)
            bn(f"{p}.bn1", planes)
            conv(f"{p}.conv2", planes, planes, 3)
            bn(f"{p}.bn2", planes)
            conv(f"{p}.conv3", planes * 4, planes, 1)
            bn(f"{p}.bn3", planes * 4)
            if j == 0:
                conv(f"{p}.downsample.0", planes * 4, inplanes, 1)
                bn(f"{p}.downsample.1", planes * 4)
            inplanes = planes * 4
    shapes["fc.weight"] = (1000, 2048)
    shapes["fc.bias"] = (1000,)
    return shapes


def is_parameter(name: str) -> bool:
    return not name.endswith(("running_mean", "running_var", "num_batches_tracked"))


def torchvision_state(depth: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """A random state dict in torchvision's layout (BN statistics valid: positive variances)."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for name, shape in torchvision_shapes(depth).items():
        if name.endswith("num_batches_tracked"):
            state[name] = torch.tensor(7)
        elif name.endswith("running_var"):
            state[name] = 0.5 + torch.rand(shape, generator=g)
        else:
            state[name] = 0.05 * torch.randn(shape, generator=g)
    return state


def head_parameters(num_classes: int, c4: int = 2048, c1: int = 256, ch: int = 512, low: int = 48,
                    rates: int = 3) -> int:
    """mmseg 0.13's DepthwiseSeparableASPPHead counted by hand: (name, in, out, kernel, groups, bias, BN).

    The branches at rates > 1 and the two decoder convs are mmcv DepthwiseSeparableConvModules; the conv
    fusing the ASPP branches is inherited from ASPPHead and stays a plain 3×3 ConvModule."""
    def sep(name: str, cin: int, cout: int) -> list[tuple]:
        return [(f"{name} depthwise", cin, cin, 3, cin, False, True),
                (f"{name} pointwise", cin, cout, 1, 1, False, True)]

    layers = [
        ("image_pool 1×1", c4, ch, 1, 1, False, True),
        ("aspp 1×1", c4, ch, 1, 1, False, True),
        *[layer for r in range(rates) for layer in sep(f"aspp rate {r}", c4, ch)],
        ("bottleneck 3×3", (rates + 2) * ch, ch, 3, 1, False, True),  # ASPPHead's, not separable
        ("c1_bottleneck 1×1", c1, low, 1, 1, False, True),
        *sep("sep_bottleneck 0", ch + low, ch),
        *sep("sep_bottleneck 1", ch, ch),
        ("conv_seg", ch, num_classes, 1, 1, True, False),
    ]
    total = 0
    for _, cin, cout, k, groups, bias, bn in layers:
        total += cout * (cin // groups) * k * k + (cout if bias else 0) + (2 * cout if bn else 0)
    return total


@pytest.fixture(scope="module")
def r50() -> DeepLabV3Plus:
    torch.manual_seed(0)
    return sb.build_model("deeplabv3plus-r50", 19).eval()


@pytest.fixture(scope="module")
def r50_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("torchvision") / "resnet50-test.pth"
    torch.save(torchvision_state(50), path)
    return path


# --------------------------------------------------------------------------------------------------
# Architecture


@pytest.mark.parametrize("size", [(32, 32), (33, 47), (64, 64), (65, 97), (97, 34)])
def test_logits_at_a_quarter_of_any_size(r50, size):
    H, W = size
    with torch.no_grad():
        c1, *_ = r50.encoder.forward_features(torch.randn(2, 3, H, W))
        logits = r50(torch.randn(2, 3, H, W))
    assert tuple(c1.shape) == (2, 256, math.ceil(H / 4), math.ceil(W / 4))
    assert tuple(logits.shape) == (2, 19, math.ceil(H / 4), math.ceil(W / 4))


def test_output_stride_8_and_the_rates_of_every_block(r50):
    with torch.no_grad():
        features = r50.encoder.forward_features(torch.randn(1, 3, 64, 64))
    assert [tuple(f.shape[1:]) for f in features] == [(256, 16, 16), (512, 8, 8), (1024, 8, 8), (2048, 8, 8)]
    # mmseg -d8 (strides 1, 2, 1, 1; dilations 1, 1, 2, 4) with torchvision's first-block rule.
    want = {1: (1, 1, 1), 2: (2, 1, 1), 3: (1, 1, 2), 4: (1, 2, 4)}  # layer: stride, first dilation, others
    for i, (stride, first, rest) in want.items():
        for j, block in enumerate(getattr(r50.encoder, f"layer{i}")):
            assert block.conv2.stride == ((stride, stride) if j == 0 else (1, 1)), (i, j)
            d = first if j == 0 else rest
            assert block.conv2.dilation == (d, d) and block.conv2.padding == (d, d), (i, j)
    assert [b.depthwise.conv.dilation[0] for b in r50.head.aspp[1:]] == [12, 24, 36]


@pytest.mark.parametrize("depth", [50, 101])
def test_parameter_counts(depth):
    model = sb.build_model(f"deeplabv3plus-r{depth}", 19)
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    backbone = TORCHVISION_PARAMS[depth] - FC_PARAMS
    assert count(model.encoder) == backbone
    generated = sum(math.prod(s) for n, s in torchvision_shapes(depth).items() if is_parameter(n))
    assert generated == TORCHVISION_PARAMS[depth]  # the layout rules above agree with torchvision's figure
    assert count(model.head) == head_parameters(19) == 17_697_923
    assert count(model) == backbone + head_parameters(19)
    assert count(model) == {50: 41_205_955, 101: 60_198_083}[depth]


def test_the_paper_count_is_this_head_plus_mmseg_auxiliary_head():
    """SegFormer's Table 2 lists DeepLabV3+ (ResNet-101, ADE20K) at 62.7M parameters: mmseg counts its
    training-only auxiliary FCNHead on layer3 (3×3 conv 1024→256 + BN, 1×1 classifier) in that figure."""
    aux = 1024 * 256 * 9 + 2 * 256 + 256 * 150 + 150
    ours = sum(p.numel() for p in sb.build_model("deeplabv3plus-r101", 150).parameters())
    assert ours == TORCHVISION_PARAMS[101] - FC_PARAMS + head_parameters(150)
    assert round((ours + aux) / 1e6, 1) == 62.7


def test_init_follows_torchvision_and_mmcv(r50):
    conv = r50.encoder.layer2[0].conv2  # Kaiming normal, fan_out, ReLU gain: std sqrt(2 / (out · k · k))
    assert conv.weight.std().item() == pytest.approx(math.sqrt(2 / (128 * 9)), rel=0.05)
    assert torch.equal(r50.encoder.bn1.weight, torch.ones(64)) and torch.equal(r50.encoder.bn1.bias, torch.zeros(64))
    assert r50.head.classifier.weight.std().item() == pytest.approx(0.01, rel=0.1)  # mmseg's conv_seg
    assert not r50.head.classifier.bias.any()


# --------------------------------------------------------------------------------------------------
# torchvision weights


def test_module_names_are_torchvision_names(r50):
    want = {n for n in torchvision_shapes(50) if not n.startswith("fc.")}
    own = {k: tuple(v.shape) for k, v in r50.backbone.state_dict().items()}
    assert set(own) == want
    assert all(own[n] == s for n, s in torchvision_shapes(50).items() if n in own)
    assert r50.backbone is r50.encoder
    assert not any(k.startswith("backbone.") for k in r50.state_dict())  # one set of keys, under encoder.


def test_torchvision_file_loads_strictly(tmp_path, r50_file):
    model = sb.build_model("deeplabv3plus-r50", 19)
    head_before = {k: v.clone() for k, v in model.head.state_dict().items()}
    n = load_torchvision_resnet(model, r50_file)
    file = torchvision_state(50)
    assert n == len(file) - 2  # all but fc.weight, fc.bias
    own = model.encoder.state_dict()
    for name, tensor in file.items():
        if not name.startswith("fc."):
            assert torch.equal(own[name], tensor), name
    assert all(torch.equal(v, head_before[k]) for k, v in model.head.state_dict().items())

    # Older torchvision files predate num_batches_tracked: still a complete backbone.
    old = {k: v for k, v in file.items() if not k.endswith("num_batches_tracked")}
    torch.save(old, tmp_path / "resnet50-old.pth")
    load_torchvision_resnet(model, tmp_path / "resnet50-old.pth")


def test_wrong_depth_names_the_first_missing_block(tmp_path, r50_file):
    r101 = sb.build_model("deeplabv3plus-r101", 19)
    # layer3 blocks 6..22 are missing: 17 blocks × (3 conv weights + 3 BNs × 4 tensors); the BN counters
    # (num_batches_tracked) are optional and not counted.
    with pytest.raises(CheckpointError, match=r"ResNet-50 backbone does not fit the model's ResNet-101: "
                                              r"255 missing \(first: encoder\.layer3\.6\.conv1\.weight\)") as e:
        load_torchvision_resnet(r101, r50_file)
    assert "deeplabv3plus-r50" in str(e.value)

    broken = torchvision_state(50)
    broken["layer2.0.conv2.weight"] = broken["layer2.0.conv2.weight"][:, :, :1, :1]
    del broken["layer4.2.bn3.bias"]
    torch.save(broken, tmp_path / "broken.pth")
    with pytest.raises(CheckpointError, match=r"1 missing \(first: encoder\.layer4\.2\.bn3\.bias\); 1 mis-shaped "
                                              r"\(first: encoder\.layer2\.0\.conv2\.weight"):
        load_torchvision_resnet(sb.build_model("deeplabv3plus-r50", 19), tmp_path / "broken.pth")


def test_a_segformer_file_is_not_a_resnet(tmp_path):
    save_model(sb.build_model("b0", 19), tmp_path / "b0.pt")
    with pytest.raises(CheckpointError, match="not a torchvision ResNet"):
        load_torchvision_resnet(sb.build_model("deeplabv3plus-r50", 19), tmp_path / "b0.pt")


def hf_to_torchvision(hf_state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """transformers' ResNetModel names → torchvision's, renamed by hand."""
    out = {}
    for key, t in hf_state.items():
        k = key.replace("embedder.embedder.convolution.", "conv1.").replace("embedder.embedder.normalization.", "bn1.")
        k = re.sub(r"^encoder\.stages\.(\d+)\.layers\.(\d+)\.",
                   lambda m: f"layer{int(m[1]) + 1}.{m[2]}.", k)
        k = k.replace("shortcut.convolution.", "downsample.0.").replace("shortcut.normalization.", "downsample.1.")
        k = re.sub(r"layer\.(\d)\.convolution\.", lambda m: f"conv{int(m[1]) + 1}.", k)
        k = re.sub(r"layer\.(\d)\.normalization\.", lambda m: f"bn{int(m[1]) + 1}.", k)
        out[k] = t
    return out


def test_resnet_matches_transformers_and_dilation_is_a_trous():
    from transformers import ResNetConfig, ResNetModel

    torch.manual_seed(0)
    hf = ResNetModel(ResNetConfig(layer_type="bottleneck", depths=[3, 4, 6, 3], embedding_size=64,
                                  hidden_sizes=[256, 512, 1024, 2048])).eval()
    with torch.no_grad():  # non-trivial BN statistics and affines, so that a mis-wired BN shows
        for name, t in hf.state_dict().items():
            if name.endswith("running_var"):
                t.uniform_(0.5, 1.5)
            elif name.endswith(("running_mean", "bias")):
                t.normal_(0.0, 0.1)
            elif name.endswith("normalization.weight"):
                t.uniform_(0.5, 1.0)
    state = hf_to_torchvision(hf.state_dict())
    assert set(state) == {n for n in torchvision_shapes(50) if not n.startswith("fc.")}
    dilated_net = ResNet(50, output_stride=8).eval()  # the encoder of deeplabv3plus-r50
    dilated_net.load_state_dict(state)
    plain = ResNet(50, output_stride=32).eval()
    plain.load_state_dict(state)

    x = torch.randn(1, 3, 65, 97)  # odd sizes: the padding of the dilated convs must line up too
    with torch.no_grad():
        want = hf(x, output_hidden_states=True).hidden_states[1:]  # after each of the 4 stages
        got = plain.forward_features(x)
        dilated = dilated_net.forward_features(x)
    for i, (a, b) in enumerate(zip(got, want, strict=True)):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4, msg=f"layer{i + 1}")
    # Output stride 8: layer1/2 are the plain ones; layer3 on every 2nd pixel, layer4 on every 4th are too.
    torch.testing.assert_close(dilated[1], got[1], rtol=1e-4, atol=1e-4)
    assert dilated[3].shape[-2:] == (9, 13) and got[3].shape[-2:] == (3, 4)
    torch.testing.assert_close(dilated[2][..., ::2, ::2], got[2], rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(dilated[3][..., ::4, ::4], got[3], rtol=1e-4, atol=1e-4)


# --------------------------------------------------------------------------------------------------
# Integration: names, checkpoints, inference, training, evaluation


def test_variant_names_and_options():
    assert variant_name("DeepLabV3+_R101") == "deeplabv3plus-r101"
    assert variant_name("deeplabv3plus_r50-d8") == "deeplabv3plus-r50"
    assert variant_name("mit-b2") == "b2"
    with pytest.raises(UserError, match=r"unknown model variant 'r50'.*b0.*b5.*deeplabv3plus-r50, deeplabv3plus-r101"):
        variant_name("r50")
    with pytest.raises(UserError, match="unknown model option.*ffn.*allowed are depth"):
        sb.build_model("deeplabv3plus-r50", 19, ffn="plain")
    m = sb.build_model("deeplabv3plus-r50", 5, output_stride=16, aspp_rates=[6, 12, 18])
    assert m.config == DeepLabConfig(depth=50, num_classes=5, output_stride=16, aspp_rates=(6, 12, 18))
    assert [b.conv2.dilation[0] for b in m.encoder.layer4] == [1, 2, 2]
    with pytest.raises(UserError, match="output_stride must be 8 or 16"):
        DeepLabConfig(output_stride=4)


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_own_format_round_trip(tmp_path, suffix):
    torch.manual_seed(1)
    model = sb.build_model("deeplabv3plus-r50", 7, output_stride=16, aspp_rates=(6, 12, 18), dropout=0.2)
    with torch.no_grad():
        for b in model.modules():
            if isinstance(b, torch.nn.BatchNorm2d):
                b.running_mean.normal_()
    model.eval()
    path = save_model(model, tmp_path / f"m{suffix}")
    if suffix == ".pt":
        assert torch.load(path, weights_only=True)["config"]["arch"] == "deeplabv3plus"
    loaded = load_model(path)
    assert isinstance(loaded, DeepLabV3Plus) and loaded.config == model.config and not loaded.training
    a, b = model.state_dict(), loaded.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    x = torch.randn(1, 3, 48, 40)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0)
    with pytest.raises(CheckpointError, match="has 7 classes but num_classes=19"):
        load_model(path, num_classes=19)
    # A SegFormer file has no arch and stays a SegFormer.
    save_model(sb.build_model("b0", 19), tmp_path / "b0.pt")
    assert isinstance(load_model(tmp_path / "b0.pt"), SegFormer)


def test_load_model_reads_a_torchvision_file_as_an_encoder(r50_file):
    with pytest.raises(CheckpointError, match="pass num_classes"):
        load_model(r50_file)
    model = load_model(r50_file, num_classes=4)
    assert isinstance(model, DeepLabV3Plus) and model.config == DeepLabConfig(depth=50, num_classes=4)
    assert torch.equal(model.encoder.layer3[5].conv2.weight, torch.load(r50_file)["layer3.5.conv2.weight"])


def test_exports_refuse_a_deeplab(tmp_path, r50):
    from segformer_bench.models.checkpoints import export_huggingface, export_official

    with pytest.raises(UserError, match="only SegFormer"):
        export_huggingface(r50, tmp_path / "hf")
    with pytest.raises(UserError, match="only SegFormer"):
        export_official(r50)


def test_input_size_floor(r50):
    assert r50.min_input_side == 32
    check_input_size(r50, (32, 500))
    with pytest.raises(UserError, match="31×40 pixels is too small: DeepLabV3\\+ needs at least 32×32"):
        check_input_size(r50, (31, 40))


def test_parameter_groups(r50):
    groups = {g["name"]: g for g in param_groups(r50, TrainConfig())}
    ids = [id(p) for g in groups.values() for p in g["params"]]
    assert sorted(ids) == sorted(id(p) for p in r50.parameters())
    bn = {id(p) for name, p in r50.encoder.named_parameters() if re.search(r"(^|\.)(bn\d|downsample\.1)\.", name)}
    assert {id(p) for p in groups["encoder_no_decay"]["params"]} == bn
    assert groups["encoder_no_decay"]["weight_decay"] == 0
    assert {id(p) for p in groups["head"]["params"]} == {id(p) for p in r50.head.parameters()}
    assert groups["head"]["lr"] == pytest.approx(10 * groups["encoder"]["lr"])
    assert groups["head"]["weight_decay"] == groups["encoder"]["weight_decay"] == 0.01


def test_train_and_evaluate(tmp_path, r50_file):
    logs: list[str] = []
    final = train(dataclasses.replace(TINY, pretrained=str(r50_file)), tmp_path / "run", progress=False,
                  log=logs.append)
    assert any("initialised the ResNet-50 encoder" in line for line in logs)
    model = load_model(final)
    assert isinstance(model, DeepLabV3Plus) and model.config.num_classes == 19
    assert not torch.equal(model.encoder.conv1.weight, torch.load(r50_file)["conv1.weight"])  # it trained
    result = evaluate(model, build_dataset("synthcity", "val", None, size=[64, 128], length=8), EVAL_PRESETS["whole"],
                      limit=2)
    assert result.per_image.shape == (2, 19, 19) and result.per_image.sum() == 2 * 64 * 128
    assert 0.0 <= result.metrics["aAcc"] <= 1.0


def test_one_image_per_pass_is_refused(tmp_path):
    with pytest.raises(UserError, match="at least 2 images per forward pass"):
        train(dataclasses.replace(TINY, batch_size=2, grad_accum=2), tmp_path / "run", progress=False,
              log=lambda _: None)
    assert not (tmp_path / "run").exists()  # refused before anything is written
