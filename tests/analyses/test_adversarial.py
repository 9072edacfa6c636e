"""The adversarial analysis end to end on SynthCity: stored units recomputed independently, ε = 0 equal to the
clean evaluation, the worst case recombined by hand, determinism over batch sizes, kill -9 resume, two gloo ranks,
the report's files, and the refusals."""

import subprocess

import numpy as np
import pytest
import torch
import yaml

import segformer_bench as sb
from segformer_bench.analyses.adversarial import store as adv_store
from segformer_bench.analyses.corruption import store as cell_store
from segformer_bench.attacks import attack
from segformer_bench.bench.runner import run_suite
from segformer_bench.bench.suite import load_suite
from segformer_bench.data import build_dataset
from segformer_bench.engine.evaluate import EVAL_PRESETS
from segformer_bench.engine.inference import eval_logits
from tests.helpers import cli_error, run_then_kill_9, run_two_gloo_ranks, stored

pytestmark = pytest.mark.usefixtures("one_torch_thread")

OPTIONS = {"size": [32, 64], "length": 3}
ATTACKS = [{"method": "pgd", "eps": [0, 2, 8], "steps": 2},
           {"method": "segpgd", "eps": [0, 8], "steps": 2}]


def suite_file(tmp_path, batch_size=1, **changes):
    sb.save_model(sb.build_model("b0", 19), tmp_path / "b0.pt")
    sb.save_model(sb.build_model("deeplabv3plus-r50", 19, output_stride=16, channels=32), tmp_path / "dl.pt")
    data = {"version": 1, "name": "adv", "analyses": ["corruption", "adversarial"],
            "dataset": {"name": "synthcity", "split": "val", "limit": 3, "options": OPTIONS},
            "models": [{"name": "B0", "variant": "b0", "checkpoint": "b0.pt"},
                       {"name": "DL", "variant": "deeplabv3plus-r50", "checkpoint": "dl.pt"}],
            "corruptions": {"cells": [["contrast", 1]], "backend": "reference"},
            "adversarial": {"attacks": ATTACKS},
            "eval": {"preset": "whole", "overrides": {"batch_size": batch_size}},
            "device": "cpu", "reports": ["tables", "plots", "html"], "report_dir": str(tmp_path / "report")}
    data |= changes
    path = tmp_path / "adv.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True))
    return str(path)


def units(run_dir):
    return stored(run_dir, adv_store.results)


def confusion(pred: np.ndarray, label: np.ndarray, K: int = 19) -> np.ndarray:
    ok = label != 255
    return np.bincount(label[ok].astype(np.int64) * K + pred[ok], minlength=K * K).reshape(K, K)


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("adv")
    path = suite_file(tmp, reports=["tables", "plots", "html", "gallery"])
    run_suite(load_suite(path), tmp / "run", progress=False, log=lambda _: None)
    return tmp, path


def test_a_stored_unit_is_the_attack_recomputed_by_hand(finished):
    tmp, _ = finished
    unit = units(tmp / "run")[("B0", "PGD L∞", 8.0)]
    model = sb.open_model(str(tmp / "b0.pt"))
    dataset = build_dataset("synthcity", "val", **OPTIONS)
    for i in range(3):
        sample = dataset[i]
        x0 = torch.from_numpy(sample["image"]).permute(2, 0, 1)[None].float() / 255
        label = torch.from_numpy(sample["label"]).long()[None]
        adv = attack(model, x0, label, eps=8 / 255, steps=2, seed=0, ids=[sample["name"]])
        with torch.no_grad():
            pred = model(adv).argmax(1)[0].numpy()
        assert unit.names[i] == sample["name"]
        np.testing.assert_array_equal(unit.per_image[i], confusion(pred, sample["label"]))
    assert unit.settings == {"method": "pgd", "norm": "linf", "eps": 8.0, "steps": 2, "alpha": 10.0, "restarts": 1,
                             "random_start": True, "quantize": False}


def test_eps_zero_is_exactly_the_clean_evaluation(finished):
    tmp, _ = finished
    adv = units(tmp / "run")
    clean = stored(tmp / "run", cell_store.cell_matrices)
    for model in ("B0", "DL"):
        for attack_name in ("PGD L∞", "SegPGD L∞"):
            np.testing.assert_array_equal(adv[(model, attack_name, 0.0)].per_image, clean[(model, "clean", 0)])


def test_attacks_lower_the_loss_and_the_worst_case_is_recombined_per_image(finished):
    tmp, _ = finished
    adv = units(tmp / "run")
    for model in ("B0", "DL"):
        assert adv[(model, "PGD L∞", 8.0)].loss.mean() > adv[(model, "PGD L∞", 0.0)].loss.mean()
    import pandas as pd

    frame = pd.read_csv(tmp / "report" / "adversarial.csv").set_index(["model", "attack", "eps_255"])
    a, b = adv[("DL", "PGD L∞", 8.0)], adv[("DL", "SegPGD L∞", 8.0)]
    acc = lambda m: np.trace(m, axis1=1, axis2=2) / m.sum(axis=(1, 2))  # noqa: E731
    pick = np.where(acc(b.per_image) < acc(a.per_image), 1, 0)
    worst = np.where(pick[:, None, None] == 1, b.per_image, a.per_image).sum(0)
    union = worst.sum(0) + worst.sum(1) - np.diag(worst)
    expected = 100 * np.mean(np.diag(worst)[union > 0] / union[union > 0])
    assert frame.loc[("DL", "worst case", 8), "mIoU"] == pytest.approx(expected, rel=1e-5)


def test_the_gallery_is_the_first_image_of_the_headline_unit(finished):
    tmp, _ = finished
    pictures = stored(tmp / "run", adv_store.gallery)
    unit = units(tmp / "run")[("DL", "PGD L∞", 8.0)]
    g = pictures["DL"]
    assert (g["attack"], g["eps"]) == ("PGD L∞", 8.0)
    label = build_dataset("synthcity", "val", **OPTIONS)[0]["label"]
    np.testing.assert_array_equal(confusion(g["adversarial_prediction"].astype(np.int64), label), unit.per_image[0])
    assert np.abs(g["adversarial"] - g["image"]).max() <= 8 + 1e-3


def test_the_report_files_and_page(finished):
    tmp, _ = finished
    report = tmp / "report"
    for name in ("adversarial.md", "adversarial.tex", "adversarial.csv", "robust.md", "adversarial.png",
                 "adversarial_gallery.png"):
        assert (report / name).exists(), name
    table = (report / "adversarial.md").read_text()
    assert "clean" in table and "ε 8/255" in table and "B0 · worst case" in table and "DL · SegPGD L∞" in table
    assert "robust mIoU (ε 8/255)" in (report / "robust.md").read_text()
    assert "Adversarial robustness" in (report / "index.html").read_text()


def test_same_numbers_whatever_the_batch_size(tmp_path):
    section = {"attacks": [{"method": "segpgd", "eps": [0, 8], "steps": 2}]}
    runs = {}
    for batch in (1, 3):  # both here, under the same thread count (float sums depend on it)
        base = tmp_path / f"b{batch}"
        base.mkdir()
        path = suite_file(base, batch_size=batch, analyses=["adversarial"], adversarial=section)
        if batch == 3:
            for name in ("b0.pt", "dl.pt"):  # the same models as the batch-1 run
                (base / name).write_bytes((tmp_path / "b1" / name).read_bytes())
        run_suite(load_suite(path), base / "run", progress=False, render=False, log=lambda _: None)
        runs[batch] = units(base / "run")
    assert sorted(runs[1]) == sorted(runs[3]) and len(runs[1]) == 4
    for key, unit in runs[3].items():
        np.testing.assert_array_equal(unit.per_image, runs[1][key].per_image)
        np.testing.assert_allclose(unit.loss, runs[1][key].loss, rtol=1e-5)


def test_killed_then_resumed_equals_uninterrupted(tmp_path):
    path = suite_file(tmp_path, analyses=["adversarial"])
    cmd = run_then_kill_9(path, tmp_path / "killed", "adversarial", 2)
    assert 1 <= len(units(tmp_path / "killed")) < 10
    subprocess.run([*cmd, str(tmp_path / "killed")], check=True, capture_output=True)
    subprocess.run([*cmd, str(tmp_path / "straight")], check=True, capture_output=True)
    killed, straight = units(tmp_path / "killed"), units(tmp_path / "straight")
    assert sorted(killed) == sorted(straight) and len(straight) == 10
    for key, unit in straight.items():
        np.testing.assert_array_equal(killed[key].per_image, unit.per_image)


def test_two_gloo_ranks_equal_one_process(tmp_path):
    path = suite_file(tmp_path, analyses=["adversarial"],
                      adversarial={"attacks": [{"method": "cospgd", "eps": [0, 4], "steps": 1}], "models": ["B0"]})
    run_two_gloo_ranks(path, tmp_path / "ddp")
    run_suite(load_suite(path), tmp_path / "one", progress=False, render=False, log=lambda _: None)
    ddp, one = units(tmp_path / "ddp"), units(tmp_path / "one")
    assert sorted(ddp) == sorted(one) == [("B0", "CosPGD L∞", 0.0), ("B0", "CosPGD L∞", 4.0)]
    for key, unit in one.items():
        np.testing.assert_array_equal(ddp[key].per_image, unit.per_image)
        assert ddp[key].names == unit.names


@pytest.mark.parametrize("section, message", [
    ({"attacks": []}, "the adversarial section has no attacks"),
    ({"attacks": [{"method": "fgsm"}]}, "unknown attack method 'fgsm'"),
    ({"attacks": [{"eps": [0, 0]}]}, "list each budget once"),
    ({"attacks": [{"eps": [8]}, {"eps": [4]}]}, "need distinct names"),
    ({"attacks": [{"eps": [8]}], "headline_eps": 4}, "headline_eps 4 is none of"),
    ({"attacks": [{"eps": [8], "restarts": 0}]}, "restarts must be a whole number"),
])
def test_bad_sections_are_one_line(tmp_path, capsys, section, message):
    path = suite_file(tmp_path, adversarial=section)
    assert message in cli_error(["validate", path], capsys)


def test_multi_scale_evaluation_is_refused_for_attacks(tmp_path, capsys):
    path = suite_file(tmp_path, eval={"preset": "whole", "overrides": {"scales": [0.5, 1.0]}})
    assert "several scales or flipped, which an attack cannot follow" in cli_error(["validate", path], capsys)


def test_eval_logits_equals_the_segmentation_pipeline():
    torch.manual_seed(0)
    model = sb.build_model("b0", 19).eval()
    images = torch.randint(0, 256, (1, 3, 40, 72), dtype=torch.uint8)
    settings = EVAL_PRESETS["whole"].__class__(mode="slide", crop=(32, 32), stride=(24, 24))
    from segformer_bench.engine.inference import segment_batch

    with torch.no_grad():
        logits = eval_logits(model, images.float() / 255, settings, scale=1.0)
        assert torch.equal(logits.argmax(1), segment_batch(model, images, settings))


def test_a_run_stored_before_the_analysis_existed_resumes(tmp_path):
    from segformer_bench.bench.runner import open_store
    from tests.helpers import corruption_suite

    path = corruption_suite(tmp_path)
    run_suite(load_suite(path), tmp_path / "run", progress=False, render=False, log=lambda _: None)
    store = open_store(tmp_path / "run" / "results.sqlite")
    try:
        old = store.get_meta("suite")
        del old["adversarial"]  # as a run of an older version stored it
        for model in old["models"]:
            assert "family" not in model  # unset fields of other model families are not stored either
        store.set_meta("suite", old)
    finally:
        store.close()
    run_suite(load_suite(path), tmp_path / "run", progress=False, render=False, log=lambda _: None)  # no refusal


@pytest.mark.slow
def test_pgd_lowers_the_miou_of_a_trained_synthcity_model(tmp_path):
    import dataclasses

    from segformer_bench.engine.evaluate import evaluate
    from segformer_bench.engine.train import train
    from segformer_bench.models.segmenter import as_segmenter
    from tests.helpers import TINY_TRAIN

    config = dataclasses.replace(TINY_TRAIN, iters=150, batch_size=4, lr=6e-4, warmup_iters=10,
                                 dataset_options={"size": [64, 128], "length": 64}, checkpoint_interval=150)
    model = as_segmenter(sb.load_model(train(config, tmp_path / "train", progress=False, log=lambda _: None)))
    data = build_dataset("synthcity", "val", size=[64, 128], length=8)
    clean = evaluate(model, data, EVAL_PRESETS["whole"]).metrics["mIoU"]
    settings = EVAL_PRESETS["whole"]

    def pgd(images, labels, names):
        adv = attack(lambda x: eval_logits(model, x, settings, scale=1.0), images.float() / 255, labels,
                     eps=8 / 255, steps=5, ids=names)
        return adv * 255, np.zeros(len(names))

    attacked = evaluate(model, data, settings, adversary=pgd).metrics["mIoU"]
    assert clean > 0.15, clean  # it learned something
    assert attacked < 0.5 * clean, (clean, attacked)
