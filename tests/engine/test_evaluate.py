"""Evaluation engine: protocols, sharding under torch.distributed, export for cityscapesScripts."""

from __future__ import annotations

import dataclasses
import math
import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

import segformer_bench as sb
from segformer_bench.data.base import DatasetInfo, SegmentationDataset
from segformer_bench.data.labels import CITYSCAPES_CLASSES, label_ids_to_train_ids
from segformer_bench.engine.evaluate import EVAL_PRESETS, evaluate, export_cityscapes_prediction
from segformer_bench.engine.inference import EvalSettings, inference_size, segment_batch, whole_inference
from segformer_bench.engine.metrics import per_image_confusion, scores
from segformer_bench.models.base import normalize


class ArrayDataset(SegmentationDataset):
    """Images and labels held in memory (random, deterministic), named like Cityscapes files."""

    def __init__(self, sizes, seed=0):
        rng = np.random.default_rng(seed)
        self.info = DatasetInfo("arrays", 19, CITYSCAPES_CLASSES)
        self.items = []  # (image, Cityscapes labelIds 0..33)
        for h, w in sizes:
            image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
            self.items.append((image, rng.integers(0, 34, (h, w)).astype(np.uint8)))

    def __len__(self):
        return len(self.items)

    def name(self, index):
        return f"city/city_{index:06d}_000019"

    def load(self, index):
        image, label_ids = self.items[index]
        return image, label_ids_to_train_ids(label_ids)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return sb.build_model("b0", num_classes=19).eval()


def test_test_size_rules():
    ade = EVAL_PRESETS["ade20k"]
    assert inference_size((512, 683), ade, 1.0) == (512, 704)  # short side 512, long side up to a multiple of 32
    assert inference_size((600, 800), ade, 1.0) == (512, 704)  # 800·(512/600) = 682.7 → 683 → 704
    assert inference_size((1024, 2048), EVAL_PRESETS["cityscapes"], 1.0) == (1024, 2048)
    assert inference_size((1024, 2048), EVAL_PRESETS["cityscapes"], 0.75) == (768, 1536)
    assert inference_size((37, 50), EVAL_PRESETS["whole"], 1.0) == (37, 50)


def test_slide_equals_whole_when_one_window_covers_the_image(model):
    ds = ArrayDataset([(64, 96), (64, 96), (48, 80)])
    whole = evaluate(model, ds, EvalSettings(mode="whole", batch_size=2))
    slide = evaluate(model, ds, EvalSettings(mode="slide", crop=(128, 128), stride=(96, 96)))
    assert np.array_equal(whole.per_image, slide.per_image)
    assert whole.names == slide.names == [ds.name(i) for i in range(3)]


def test_batching_does_not_change_results(model):
    ds = ArrayDataset([(64, 96)] * 3 + [(48, 80)])
    one = evaluate(model, ds, EvalSettings(mode="whole", batch_size=1))
    many = evaluate(model, ds, EvalSettings(mode="whole", batch_size=3))
    assert np.array_equal(one.per_image, many.per_image)
    assert one.metrics == many.metrics


def test_metrics_are_those_of_the_summed_matrix(model):
    ds = ArrayDataset([(64, 96), (40, 72)])
    result = evaluate(model, ds, EVAL_PRESETS["whole"])
    x = torch.from_numpy(ds[0]["image"]).permute(2, 0, 1)[None]
    with torch.no_grad():
        pred = whole_inference(model, normalize(x)).argmax(1)
    assert np.array_equal(result.per_image[0], per_image_confusion(pred, torch.from_numpy(ds[0]["label"])[None],
                                                                   19)[0].numpy())
    assert result.metrics == scores(result.per_image.sum(0))


def test_multiscale_flip_averages_softmax_at_original_size(model):
    settings = EvalSettings(mode="whole", scales=(0.5, 1.0), flip=True)
    x = torch.randint(0, 256, (1, 3, 64, 96), dtype=torch.uint8)
    with torch.no_grad():
        got = segment_batch(model, x, settings)
        xn = normalize(x)
        probs = 0
        for r in (0.5, 1.0):
            xs = F.interpolate(xn, size=(int(64 * r + 0.5), int(96 * r + 0.5)), mode="bilinear", align_corners=False)
            for flip in (False, True):
                logits = model(xs.flip(-1) if flip else xs)
                logits = F.interpolate(logits, size=xs.shape[-2:], mode="bilinear", align_corners=False)
                logits = logits.flip(-1) if flip else logits
                logits = F.interpolate(logits, size=(64, 96), mode="bilinear", align_corners=False)
                probs = probs + logits.softmax(1)
    assert torch.equal(got, probs.argmax(1))


def test_export_is_read_by_cityscapesscripts(tmp_path, model):
    """Exported labelId PNGs, scored by the official evaluator against labelId ground truth, give our mIoU."""
    from cityscapesscripts.evaluation import evalPixelLevelSemanticLabeling as cs

    ds = ArrayDataset([(64, 96), (48, 80)])
    gts = []
    for i, (_, ids) in enumerate(ds.items):
        path = tmp_path / "gt" / f"city_{i:06d}_000019_gtFine_labelIds.png"
        path.parent.mkdir(exist_ok=True)
        Image.fromarray(ids).save(path)
        gts.append(str(path))
    result = evaluate(model, ds, EVAL_PRESETS["whole"], export_dir=tmp_path / "pred",
                      export=export_cityscapes_prediction)
    preds = sorted(str(p) for p in (tmp_path / "pred").rglob("*.png"))
    assert [os.path.basename(p) for p in preds] == ["city_000000_000019.png", "city_000001_000019.png"]
    cs.args.evalInstLevelScore, cs.args.JSONOutput, cs.args.quiet = False, False, True
    official = cs.evaluateImgLists(preds, gts, cs.args)
    assert result.metrics["mIoU"] == pytest.approx(official["averageScoreClasses"], abs=1e-12)


def _sharded_worker(rank, world, init_file, ckpt, sizes, out_dir):
    torch.distributed.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        model = sb.load_model(ckpt)
        result = evaluate(model, ArrayDataset(sizes), EvalSettings(mode="whole"))
        np.save(os.path.join(out_dir, f"rank{rank}.npy"), result.per_image)
        with open(os.path.join(out_dir, f"rank{rank}.names"), "w") as f:
            f.write("\n".join(result.names))
    finally:
        torch.distributed.destroy_process_group()


def test_two_process_sharded_evaluation_equals_one_process(tmp_path, model):
    sizes = [(64, 96), (48, 80), (64, 96), (40, 64), (56, 56)]
    ckpt = sb.save_model(model, tmp_path / "m.pt")
    torch.multiprocessing.spawn(_sharded_worker, args=(2, str(tmp_path / "init"), str(ckpt), sizes, str(tmp_path)),
                                nprocs=2, join=True)
    single = evaluate(model, ArrayDataset(sizes), EvalSettings(mode="whole"))
    for rank in range(2):
        assert np.array_equal(np.load(tmp_path / f"rank{rank}.npy"), single.per_image)
        assert (tmp_path / f"rank{rank}.names").read_text().split("\n") == single.names


def test_limit_and_presets(model):
    ds = ArrayDataset([(64, 96)] * 4)
    assert len(evaluate(model, ds, EVAL_PRESETS["whole"], limit=2).names) == 2
    assert dataclasses.replace(EVAL_PRESETS["cityscapes"], mode="whole").crop == (1024, 1024)
    assert not math.isnan(evaluate(model, ds, EVAL_PRESETS["whole"], limit=1).metrics["aAcc"])
