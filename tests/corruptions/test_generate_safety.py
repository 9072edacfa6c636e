"""`segformer-bench corrupt` and corrupted trees under bad input and kill -9: a manifest of the wrong shape,
a seed beyond 64 bits, counts below one are one line with nothing written; a killed run redoes at most the
images in flight (told by the files' inode numbers), and its worker processes do not outlive it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from segformer_bench.corruptions import corrupt, derive_seed
from segformer_bench.corruptions.generate import CorruptionJob, generate
from segformer_bench.corruptions.views import CorruptedTree
from segformer_bench.data import build_dataset
from segformer_bench.errors import UserError

from ..helpers import cli_error, one_line_error

OPTIONS = {"size": [48, 96], "length": 2}
ARGS = ["--dataset-option", "size=[48,96]", "--dataset-option", "length=2", "--corruption", "contrast",
        "--severity", "1", "--backend", "fast", "--no-progress"]
JOB = CorruptionJob(dataset="synthcity", split="val", root=None, dataset_options=OPTIONS, cells=(("contrast", 1),),
                    backend="fast")


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """(inode, mtime) of every PNG under `root`, from the OS: a rewritten file (temporary + rename) gets a new
    inode."""
    return {str(p.relative_to(root)): (p.stat().st_ino, p.stat().st_mtime_ns) for p in sorted(root.rglob("*.png"))}


@pytest.fixture
def tree(tmp_path) -> Path:
    out = tmp_path / "tree"
    generate(JOB, out, progress=False, log=lambda _: None)
    return out


# --- a manifest of the wrong shape ----------------------------------------------------------------------------

BAD_MANIFESTS = {
    "a list": lambda m: [m],
    "null": lambda m: None,
    "no job": lambda m: {k: v for k, v in m.items() if k != "job"},
    "job without a seed": lambda m: {**m, "job": {k: v for k, v in m["job"].items() if k != "seed"}},
    "seed a string": lambda m: {**m, "job": {**m["job"], "seed": "0"}},
    "cells not pairs": lambda m: {**m, "job": {**m["job"], "cells": [["contrast"]]}},
    "options a list": lambda m: {**m, "job": {**m["job"], "options": [1]}},
    "images an object": lambda m: {**m, "images": {"a": 1}},
    "an image without its path": lambda m: {**m, "images": [{"name": i["name"]} for i in m["images"]]},
    "an image path leaving the tree": lambda m: {**m, "images": [{**i, "image": "../../escape.png"}
                                                                 for i in m["images"]]},
    "an absolute image path": lambda m: {**m, "images": [{**i, "image": "/etc/passwd"} for i in m["images"]]},
    "files a list": lambda m: {**m, "files": list(m["files"])},
}


@pytest.mark.parametrize("case", list(BAD_MANIFESTS))
def test_corrupted_tree_with_a_manifest_of_the_wrong_shape(tree, case):
    manifest = tree / "manifest.json"
    manifest.write_text(json.dumps(BAD_MANIFESTS[case](json.loads(manifest.read_text()))))
    with pytest.raises(UserError) as excinfo:
        CorruptedTree(tree, "contrast", 1)
    one_line_error(excinfo, manifest, "not a corrupted-tree manifest")


@pytest.mark.parametrize("case", list(BAD_MANIFESTS))
def test_resuming_with_a_manifest_of_the_wrong_shape(tree, capsys, case):
    manifest = tree / "manifest.json"
    manifest.write_text(json.dumps(BAD_MANIFESTS[case](json.loads(manifest.read_text()))))
    before, text = snapshot(tree), manifest.read_text()
    (tree / "contrast" / "1" / "synthcity" / "val" / "000001.png").unlink()  # something left to do
    message = cli_error(["corrupt", "--out", str(tree), *ARGS], capsys)
    assert str(manifest) in message and "not a corrupted-tree manifest" in message
    assert snapshot(tree) == {k: v for k, v in before.items() if not k.endswith("000001.png")}
    assert manifest.read_text() == text and not (tree.parent / "escape.png").exists()


def test_a_tree_whose_images_are_not_its_sources_any_more(tree):
    manifest = json.loads((tree / "manifest.json").read_text())
    manifest["images"][0]["name"] = "synthcity/val/000007"
    (tree / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(UserError) as excinfo:
        CorruptedTree(tree, "contrast", 1)
    one_line_error(excinfo, tree / "manifest.json", "not those of its source dataset")


# --- seeds and counts -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [str(2**64), str(2**200), "-1"])
def test_seed_outside_64_bits_is_refused(tmp_path, capsys, seed):
    message = cli_error(["corrupt", "--out", str(tmp_path / "c"), "--seed", seed, *ARGS], capsys)
    assert message == f"--seed must be in [0, 2**64), got {seed}"
    assert not (tmp_path / "c").exists()


def test_seed_bounds_of_the_library():
    assert derive_seed(2**64 - 1, "x", "fog", 1) != derive_seed(0, "x", "fog", 1)
    for seed in (2**64, -1, 1.5, True):
        with pytest.raises(UserError) as excinfo:
            derive_seed(seed, "x", "fog", 1)
        one_line_error(excinfo, "seed must be an integer in [0, 2**64)")
        with pytest.raises(UserError):
            CorruptionJob(dataset="synthcity", split="val", root=None, seed=seed)


@pytest.mark.parametrize(("flag", "value"), [("--workers", "0"), ("--workers", "-2"), ("--limit", "0"),
                                             ("--limit", "-1")])
def test_counts_below_one_name_the_flag(tmp_path, capsys, flag, value):
    message = cli_error(["corrupt", "--out", str(tmp_path / "c"), flag, value, *ARGS], capsys)
    assert message == f"{flag} must be at least 1, got {value}"
    assert not (tmp_path / "c").exists()


# --- kill -9 ---------------------------------------------------------------------------------------------------

KILL_LENGTH = 60
KILL_ARGS = ["--dataset-option", "size=[64,128]", "--dataset-option", f"length={KILL_LENGTH}", "--corruption",
             "contrast", "--corruption", "gaussian_noise", "--severity", "1", "--backend", "fast", "--no-progress"]


def start_and_kill(out: Path, args: list[str], workers: int, ready: Callable[[Path], bool]) -> list[int]:
    """Start `corrupt` in a subprocess, SIGKILL it once `ready(out)`, and return the ids of its child processes
    that ran just before the kill."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "segformer_bench", "corrupt", "--out", str(out), "--workers", str(workers), *args]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and proc.poll() is None and not ready(out):
            time.sleep(0.01)
        assert proc.poll() is None, "the run ended before it could be killed"
        children = [pid for pid in children_of(proc.pid) if alive(pid)]
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    return children


def image_of(rel: str) -> str:
    return rel.split("/", 2)[2]  # <corruption>/<severity>/<image>


def rewritten_images(out: Path, before: dict[str, tuple[int, int]]) -> set[str]:
    after = snapshot(out)
    assert len(after) == KILL_LENGTH * 2  # the resumed run finished the tree
    return {image_of(rel) for rel, stat in before.items() if after[rel] != stat}


def check_files(out: Path, images: list[int]) -> None:
    """The files of `images` hold exactly corrupt(image, cell, derived seed)."""
    source = build_dataset("synthcity", "val", size=[64, 128], length=KILL_LENGTH)
    for i in images:
        sample = source[i]
        for name in ("contrast", "gaussian_noise"):
            want = corrupt(sample["image"], name, 1, derive_seed(0, sample["name"], name, 1), backend="fast")
            with Image.open(out / name / "1" / "synthcity" / "val" / f"{i:06d}.png") as image:
                assert np.array_equal(np.array(image), want), (i, name)


def test_a_killed_run_redoes_at_most_the_image_in_flight(tmp_path):
    from segformer_bench.cli import main

    out = tmp_path / "c"
    start_and_kill(out, KILL_ARGS, workers=1, ready=lambda out: len(snapshot(out)) >= 16)
    before = snapshot(out)
    recorded = json.loads("[" + ",".join((out / "manifest.journal").read_text().splitlines()) + "]")
    assert 16 <= len(before) < 2 * KILL_LENGTH and len(before) >= 2 * len(recorded)
    assert main(["corrupt", "--out", str(out), "--workers", "1", *KILL_ARGS]) == 0
    redone = rewritten_images(out, before)
    assert len(redone) <= 1, redone  # one process: only the image it was working on
    assert not redone & {image_of(rel) for entry in recorded for rel in entry}  # a recorded image is never redone
    manifest = json.loads((out / "manifest.json").read_text())
    assert len(manifest["files"]) == 2 * KILL_LENGTH and not (out / "manifest.journal").exists()
    check_files(out, list(range(len(recorded) + 2)))


def children_of(pid: int) -> list[int]:
    """Processes whose parent is `pid`, from /proc."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie waiting for init to reap it has ended)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads processes from Linux's /proc")
def test_workers_end_with_a_killed_parent(tmp_path):
    """Each task is one image under five slow cells (the reference glass blur, about a second each): killed
    once the first file appears, a worker that outlived its parent would go on writing for seconds."""
    out = tmp_path / "c"
    args = ["--dataset-option", "size=[160,320]", "--dataset-option", "length=4", "--corruption", "glass_blur",
            "--backend", "reference", "--no-progress"]
    workers = start_and_kill(out, args, workers=2, ready=lambda out: bool(snapshot(out)))
    killed, at_kill = time.monotonic(), snapshot(out)
    assert len(workers) >= 2  # the pool's workers (and its resource tracker)
    while time.monotonic() < killed + 1.5 and any(map(alive, workers)):
        time.sleep(0.02)
    assert not [pid for pid in workers if alive(pid)], "worker processes outlived their parent"
    time.sleep(max(0.0, killed + 1.5 - time.monotonic()))
    assert snapshot(out) == at_kill  # nothing written after the kill
