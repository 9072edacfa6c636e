"""The fast path (``compile`` and ``autocast`` evaluation settings) against the eager fp32 path as the oracle.

The default run checks the plumbing with torch.compile's ``eager`` / ``aot_eager`` backends (Dynamo traces the
network, no code is generated); the slow tests run inductor itself.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import segformer_bench as sb
from segformer_bench.config import ConfigError
from segformer_bench.data.base import DatasetInfo, SegmentationDataset
from segformer_bench.data.labels import CITYSCAPES_CLASSES
from segformer_bench.engine import inference
from segformer_bench.engine.evaluate import EVAL_PRESETS, eval_settings, evaluate
from segformer_bench.engine.inference import (
    EvalSettings,
    compile_pays,
    decide_compile,
    eval_logits,
    planned_passes,
    segment_batch,
)
from segformer_bench.models.base import normalize
from segformer_bench.models.segmenter import as_segmenter
from tests.helpers import cli_error

WHOLE = EvalSettings(mode="whole")
SLIDE = EvalSettings(mode="slide", crop=(64, 64), stride=(48, 48))


class Images(SegmentationDataset):
    """Random 19-class images and labels held in memory."""

    def __init__(self, count: int, size: tuple[int, int] = (64, 64), seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.info = DatasetInfo("arrays", 19, CITYSCAPES_CLASSES)
        self.items = [(rng.integers(0, 256, (*size, 3), dtype=np.uint8),
                       rng.integers(0, 19, size).astype(np.uint8)) for _ in range(count)]

    def __len__(self) -> int:
        return len(self.items)

    def name(self, index: int) -> str:
        return f"image{index}"

    def load(self, index: int):
        return self.items[index]


def b0(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return sb.build_model("b0", num_classes=19).eval()


@pytest.fixture
def compiles(monkeypatch):
    """torch.compile with a backend that only traces (`eager` by default), counting the compiled callables built
    (``calls``) and the graphs Dynamo hands the backend (``graphs``: one per traced shape, grad mode, …)."""
    torch._dynamo.reset()
    real = torch.compile
    counts = {"calls": 0, "graphs": 0, "backend": "eager"}

    def backend(gm, example_inputs):
        counts["graphs"] += 1
        inner = counts["backend"]
        if inner == "eager":
            return gm.forward
        from torch._dynamo.backends.registry import lookup_backend

        return lookup_backend(inner)(gm, example_inputs)

    def counting(fn, **kwargs):
        counts["calls"] += 1
        assert kwargs.get("dynamic") is False
        return real(fn, backend=backend, dynamic=False)

    monkeypatch.setattr(torch, "compile", counting)
    yield counts
    torch._dynamo.reset()


def eager_logits(model: torch.nn.Module, images: torch.Tensor) -> torch.Tensor:
    """The oracle: the model's own forward on normalised images, resized to the input bilinearly."""
    out = model(normalize(images.float()))
    return F.interpolate(out, size=images.shape[-2:], mode="bilinear", align_corners=False)


# -- the setting ----------------------------------------------------------------------------------------------


def test_compile_values_and_yaml_booleans():
    assert EvalSettings().compile == "off"
    assert eval_settings("whole", {"compile": "auto"}, where="s").compile == "auto"
    # YAML reads a bare on/off as a boolean: `--set compile=on` and `compile: off` still mean what they say
    assert eval_settings("whole", {"compile": True}, where="s").compile == "on"
    assert eval_settings("whole", {"compile": False}, where="s").compile == "off"
    with pytest.raises(ConfigError) as excinfo:
        eval_settings("whole", {"compile": "fast"}, where="suite.yaml: eval")
    message = str(excinfo.value)
    assert "\n" not in message and "compile" in message and "'auto'" in message and "suite.yaml" in message
    with pytest.raises(ConfigError, match="compile must be one of off, on, auto"):
        EvalSettings(compile="fast")


def test_eval_refuses_a_bad_compile_value_in_one_line(capsys, tmp_path):
    message = cli_error(["eval", "--checkpoint", str(tmp_path / "m.pt"), "--dataset", "synthcity",
                         "--set", "compile=fast"], capsys)
    assert "compile" in message and "fast" in message


# -- compile: on, through a tracing backend -------------------------------------------------------------------


def test_compiled_network_is_built_once_and_matches_eager(compiles):
    model = as_segmenter(b0())
    batches = [torch.randint(0, 256, (2, 3, 64, 64), generator=torch.Generator().manual_seed(i), dtype=torch.uint8)
               for i in range(3)]
    on = EvalSettings(mode="whole", compile="on")
    graphs = []
    with torch.inference_mode():
        for images in batches:
            probs: list[torch.Tensor] = []
            labels = segment_batch(model, images, on, probs)
            graphs.append(compiles["graphs"])
            reference = eager_logits(model.module, images)
            assert (probs[0] - reference.softmax(1)).abs().max() <= 1e-5
            assert torch.equal(labels, reference.argmax(1))
        # sliding windows of another shape through eval_logits: the same compiled callable, traced anew
        window = EvalSettings(mode="slide", crop=(48, 48), stride=(32, 32), compile="on")
        logits = eval_logits(model, batches[0].float(), window)
    assert compiles["calls"] == 1  # one compiled callable for this model object, for every batch and mode
    assert graphs[0] >= 1 and graphs == [graphs[0]] * 3  # batches of one shape: traced once
    assert compiles["graphs"] > graphs[0]  # a new shape: torch recompiles
    reference = inference.slide_inference(model.module, normalize(batches[0].float()), (48, 48), (32, 32))
    assert (logits - reference).abs().max() <= 1e-5


def test_a_second_model_never_runs_the_first_ones_compiled_network(compiles):
    first, second = as_segmenter(b0(0)), as_segmenter(b0(1))
    on = EvalSettings(mode="whole", compile="on")
    images = torch.randint(0, 256, (1, 3, 64, 64), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    with torch.inference_mode():
        a, b = eval_logits(first, images, on, scale=255), eval_logits(second, images, on, scale=255)
        assert (a - eager_logits(first.module, images)).abs().max() <= 1e-5
        assert (b - eager_logits(second.module, images)).abs().max() <= 1e-5
        assert (a - b).abs().max() > 1e-2  # different weights: different logits
    assert compiles["calls"] == 2


# aot_eager: AOTAutograd's joint forward/backward graph, as inductor builds it
@pytest.mark.parametrize("backend", ["eager", pytest.param("aot_eager", marks=pytest.mark.slow)])
def test_attack_gradients_through_the_compiled_network(compiles, backend):
    compiles["backend"] = backend
    model = as_segmenter(b0())
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    weights = torch.randn(1, 19, 64, 64, generator=torch.Generator().manual_seed(1))
    grads = []
    for compile in ("off", "on"):
        xi = x.clone().requires_grad_(True)
        (eval_logits(model, xi, EvalSettings(mode="whole", compile=compile), scale=1.0) * weights).sum().backward()
        grads.append(xi.grad)
    assert compiles["calls"] == 1
    assert grads[0].abs().max() > 0
    assert (grads[1] - grads[0]).abs().max() <= 1e-4 * grads[0].abs().max()  # decomposed ops: float rounding


def test_an_attack_runs_under_compile_on(compiles):
    from segformer_bench.attacks import attack

    model = as_segmenter(b0())
    x0 = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    label = torch.randint(0, 19, (1, 64, 64), generator=torch.Generator().manual_seed(1))
    advs = [attack(lambda x, c=compile: eval_logits(model, x, EvalSettings(mode="whole", compile=c), scale=1.0),
                   x0, label, method="pgd", norm="linf", eps=4 / 255, alpha=1 / 255, steps=2, random_start=False,
                   seed=0, ids=["a"], quantize=False, autocast=None)
            for compile in ("off", "on")]
    assert compiles["calls"] == 1
    assert (advs[1] - x0).abs().max() <= 4 / 255 + 1e-6
    # the sign of each gradient step agrees wherever the step is not at a tie
    assert (advs[1] - advs[0]).abs().gt(1e-4).float().mean() < 0.01


# -- compile: auto ----------------------------------------------------------------------------------------------


def test_planned_passes_by_hand():
    # Cityscapes: 1024×2048 images, 1024² windows with stride 768 → 3 windows per image
    assert planned_passes((1024, 2048), EVAL_PRESETS["cityscapes"], 500) == {(1024, 1024): 1500}
    ms = planned_passes((1024, 2048), EVAL_PRESETS["cityscapes-ms"], 1)
    assert ms[(512, 1024)] == 2  # scale 0.5: one 512×1024 window (smaller than the crop), × 2 for the flip
    assert ms[(768, 1024)] == 4  # 0.75: 768×1536 → 2 windows, × 2
    # 1.0 … 2.0: 1024×2048 → 1 × 3 windows, 1280×2560 → 2 × 3, 1536×3072 → 2 × 4, 1792×3584 → 2 × 5,
    # 2048×4096 → 3 × 5 (rows, cols: ceil((side − 1024) / 768) + 1), × 2 for the flip
    assert ms[(1024, 1024)] == 2 * (3 + 6 + 8 + 10 + 15)
    # ADE20K: the whole image at short side 512, long side to a multiple of 32 (683 → 704)
    assert planned_passes((512, 683), EVAL_PRESETS["ade20k"], 10) == {(512, 704): 10}


def test_compile_pays_by_the_numbers(monkeypatch):
    monkeypatch.setattr(inference, "COMPILE_BREAK_EVEN", 560)
    assert not compile_pays({})
    assert not compile_pays({(512, 512): 559}) and compile_pays({(512, 512): 560})
    assert compile_pays({(1024, 1024): 140})  # 140 inputs of 4 units each
    assert not compile_pays({(512, 512): 800, (256, 256): 100})  # mean over the two shapes: (800 + 25) / 2
    assert compile_pays({(512, 512): 10}, break_even=10)
    # Cityscapes val (500 images × 3 windows of 1024²) pays, 4 images do not
    assert compile_pays(planned_passes((1024, 2048), EVAL_PRESETS["cityscapes"], 500))
    assert not compile_pays(planned_passes((1024, 2048), EVAL_PRESETS["cityscapes"], 4))


def test_auto_is_off_for_a_handful_of_images_and_on_once_they_pay(compiles, monkeypatch):
    model = as_segmenter(b0())
    few = evaluate(model, Images(3), EvalSettings(mode="whole", compile="auto"))
    assert few.settings.compile == "off" and compiles["calls"] == 0
    # three evaluations of 3 images of 64² (1/64 unit each): the second one reaches the break-even (6 ≥ 5)
    monkeypatch.setattr(inference, "COMPILE_BREAK_EVEN", 5 / 64)
    model = as_segmenter(b0())
    decisions = [evaluate(model, Images(3), EvalSettings(mode="whole", compile="auto")).settings.compile
                 for _ in range(3)]
    assert decisions == ["off", "on", "on"] and compiles["calls"] == 1
    assert model.passes == {(64, 64): 9}


def test_auto_counts_direct_calls_too(compiles, monkeypatch):
    monkeypatch.setattr(inference, "COMPILE_BREAK_EVEN", 3 / 64)
    model = as_segmenter(b0())
    auto = EvalSettings(mode="whole", compile="auto")
    x = torch.rand(1, 3, 64, 64)
    for _ in range(2):
        eval_logits(model, x, auto, scale=1.0)
    assert compiles["calls"] == 0
    eval_logits(model, x, auto, scale=1.0)
    assert compiles["calls"] == 1


def test_decide_compile_records_the_passes():
    model = as_segmenter(b0())
    assert not decide_compile(model, (1024, 2048), EVAL_PRESETS["cityscapes"], 4)
    assert model.passes == {(1024, 1024): 12}
    assert decide_compile(model, (1024, 2048), EVAL_PRESETS["cityscapes"], 500)


# -- off is what it always was; bf16 on CPU ----------------------------------------------------------------------


def test_off_gives_the_eager_numbers_exactly():
    model = b0()
    data = Images(3)
    result = evaluate(model, data, EvalSettings(mode="whole"))
    assert result.settings.compile == "off"
    with torch.inference_mode():
        for i, cm in enumerate(result.per_image):
            image, label = data.items[i]
            pred = eager_logits(model, torch.from_numpy(image).permute(2, 0, 1)[None]).argmax(1)[0].numpy()
            hand = np.bincount(label.astype(np.int64).ravel() * 19 + pred.ravel(), minlength=19 * 19)
            assert np.array_equal(cm, hand.reshape(19, 19))


def test_bf16_autocast_on_cpu_gives_float32_logits_that_mostly_agree():
    model = as_segmenter(b0())
    images = torch.randint(0, 256, (2, 3, 64, 64), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    flip = EvalSettings(mode="whole", flip=True)
    with torch.inference_mode():
        reference = segment_batch(model, images, flip)  # fp32
        with torch.autocast("cpu", dtype=torch.bfloat16):
            logits = eval_logits(model, images, SLIDE, scale=255)
            probs: list[torch.Tensor] = []
            labels = segment_batch(model, images, flip, probs)
    assert logits.dtype == torch.float32 and probs[0].dtype == torch.float32
    assert torch.allclose(probs[0].sum(1), torch.ones(2, 64, 64), atol=1e-5)
    assert (logits - inference.slide_inference(model.module, normalize(images.float()), (64, 64), (48, 48))
            ).abs().max() < 0.5  # bf16 keeps 8 bits of mantissa: logits near, not equal
    assert (labels == reference).float().mean() > 0.9


def test_evaluate_runs_bf16_on_cpu():
    result = evaluate(b0(), Images(2), EvalSettings(mode="whole", autocast="bf16"))
    assert result.per_image.sum() == 2 * 64 * 64 and result.settings.autocast == "bf16"


# -- inductor itself ---------------------------------------------------------------------------------------------


@pytest.mark.slow
# importing inductor imports torch.utils.mkldnn, which uses torch's own deprecated torch.jit.script_method
@pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")
def test_inductor_logits_and_gradients_match_eager():
    torch._dynamo.reset()
    model = as_segmenter(b0())
    images = torch.randint(0, 256, (2, 3, 64, 64), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    on = EvalSettings(mode="whole", compile="on")
    with torch.inference_mode():
        logits = eval_logits(model, images, on, scale=255)
    assert (logits - eager_logits(model.module, images)).abs().max() <= 1e-5
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    weights = torch.randn(1, 19, 64, 64, generator=torch.Generator().manual_seed(1))
    grads = []
    for settings in (WHOLE, on):
        xi = x.clone().requires_grad_(True)
        (eval_logits(model, xi, settings, scale=1.0) * weights).sum().backward()
        grads.append(xi.grad)
    assert (grads[1] - grads[0]).abs().max() <= 1e-4 * grads[0].abs().max()  # decomposed ops: float rounding
    torch._dynamo.reset()


# -- from a suite ------------------------------------------------------------------------------------------------


def test_a_suite_with_compile_on_compiles_once_for_every_cell(compiles, tmp_path):
    from segformer_bench.analyses.corruption.store import cell_matrices
    from segformer_bench.bench.runner import run_suite
    from segformer_bench.bench.suite import load_suite
    from tests.helpers import corruption_suite, stored

    runs = {}
    for compile in (False, True):  # a bare YAML off / on
        (tmp_path / str(compile)).mkdir()
        torch.manual_seed(0)  # the suite's checkpoint: the same random B0 both times
        path = corruption_suite(tmp_path / str(compile),
                                eval={"preset": "whole", "overrides": {"batch_size": 2, "compile": compile}})
        run_suite(load_suite(path), tmp_path / str(compile) / "run", progress=False, render=False, log=lambda _: None)
        runs[compile] = stored(tmp_path / str(compile) / "run", cell_matrices)
    assert compiles["calls"] == 1  # the clean cell and both corrupted ones ran one compiled network
    assert runs[True].keys() == runs[False].keys() and len(runs[True]) == 3
    for key, matrices in runs[False].items():
        assert np.array_equal(runs[True][key], matrices)
