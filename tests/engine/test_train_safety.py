"""A training run directory that is never mixed: an unreadable newest checkpoint resumes from the previous one,
checkpoints reach the disk before they are published, a second process is refused, a failed first attempt poisons
nothing, and non-finite or negative rates and seeds beyond 64 bits are one line naming the field."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import yaml

import segformer_bench as sb
from segformer_bench.cli import main
from segformer_bench.config import to_mapping
from segformer_bench.engine.train import train

from ..helpers import TINY_TRAIN, cli_error


def _weights(path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)["model"]


def _same_weights(a, b) -> bool:
    wa, wb = _weights(a), _weights(b)
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def _iters(run: Path) -> list[int]:
    return [json.loads(line)["iter"] for line in (run / "metrics.jsonl").read_text().splitlines()]


def _config_file(tmp_path: Path, config=TINY_TRAIN, name: str = "tiny.yaml") -> str:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(to_mapping(config)))
    return str(path)


def _damage(path: Path, how: str) -> bytes:
    data = path.read_bytes()
    damaged = {"truncated": data[: len(data) // 2], "empty": b""}.get(how)
    if damaged is None:  # a whole torch file, but not a training checkpoint
        torch.save({"model": {}}, path)
        damaged = path.read_bytes()
    path.write_bytes(damaged)
    return damaged


@pytest.mark.parametrize("how", ["truncated", "empty", "no training state"])
def test_an_unreadable_newest_checkpoint_is_set_aside_and_the_previous_one_resumed(tmp_path, how):
    straight = train(TINY_TRAIN, tmp_path / "a", progress=False, log=lambda _: None)
    train(TINY_TRAIN, tmp_path / "b", progress=False, stop_after=3, log=lambda _: None)
    checkpoints = tmp_path / "b" / "checkpoints"
    assert sorted(p.name for p in checkpoints.glob("iter_*.pt")) == ["iter_0000002.pt", "iter_0000003.pt"]
    damaged = _damage(checkpoints / "iter_0000003.pt", how)
    said: list[str] = []
    resumed = train(TINY_TRAIN, tmp_path / "b", progress=False, log=said.append)
    assert any(f"{checkpoints / 'iter_0000003.pt'} cannot be read" in m for m in said), said
    assert any(f"resuming from {checkpoints / 'iter_0000002.pt'} at iteration 2" in m for m in said), said
    assert (checkpoints / "iter_0000003.unreadable").read_bytes() == damaged  # kept for a look, never resumed
    assert _same_weights(straight, resumed)  # bit for bit on CPU: the run went on from iteration 2
    assert _iters(tmp_path / "b") == _iters(tmp_path / "a")


def test_no_readable_checkpoint_left_starts_again_from_iteration_zero(tmp_path):
    straight = train(TINY_TRAIN, tmp_path / "a", progress=False, log=lambda _: None)
    train(TINY_TRAIN, tmp_path / "b", progress=False, stop_after=3, log=lambda _: None)
    for p in (tmp_path / "b" / "checkpoints").glob("iter_*.pt"):
        _damage(p, "truncated")
    said: list[str] = []
    resumed = train(TINY_TRAIN, tmp_path / "b", progress=False, log=said.append)
    assert any("starting from iteration 0" in m for m in said), said
    assert _same_weights(straight, resumed) and _iters(tmp_path / "b") == _iters(tmp_path / "a")


def test_checkpoints_reach_the_disk_before_the_rename_that_publishes_them(tmp_path, monkeypatch):
    events: list[tuple] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        events.append(("fsync", os.fstat(fd).st_ino))
        real_fsync(fd)

    def replace(src, dst):
        events.append(("replace", os.stat(src).st_ino, Path(dst)))
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    run = tmp_path / "run"
    train(TINY_TRAIN, run, progress=False, log=lambda _: None)
    monkeypatch.undo()
    published = [(i, e) for i, e in enumerate(events)
                 if e[0] == "replace" and (e[2].suffix == ".pt" and e[2].parent.name == "checkpoints"
                                           or e[2] == run / "model.pt")]
    assert {e[2].name for _, e in published} == {"iter_0000002.pt", "iter_0000004.pt", "model.pt"}
    for i, (_, inode, target) in published:
        assert ("fsync", inode) in events[:i], target  # its data, before the rename
        assert ("fsync", os.stat(target.parent).st_ino) in events[i + 1:], target  # the rename itself, after


_HOLD_LOCK = textwrap.dedent("""
    import sys, time
    from segformer_bench.image_io import locked_dir
    with locked_dir(sys.argv[1]):
        print("ready", flush=True)
        time.sleep(600)
""")


def test_a_second_process_on_a_training_directory_is_refused_until_its_holder_dies(tmp_path, capsys):
    run = tmp_path / "run"
    config = _config_file(tmp_path)
    env = {**os.environ, "PYTHONPATH": str(Path(sb.__file__).parent.parent)}
    holder = subprocess.Popen([sys.executable, "-c", _HOLD_LOCK, str(run)], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert holder.stdout.readline().strip() == "ready"
        message = cli_error(["train", "--run-dir", str(run), "--config", config, "--no-progress"], capsys)
        assert f"pid {holder.pid}" in message and socket.gethostname() in message
        assert sorted(p.name for p in run.iterdir()) == [".lock"]  # nothing of the refused run
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()
    finally:
        if holder.poll() is None:
            holder.kill()
        holder.communicate()
    assert main(["train", "--run-dir", str(run), "--config", config, "--no-progress"]) == 0
    assert (run / "model.pt").is_file()


def test_a_first_attempt_that_failed_before_training_does_not_poison_the_directory(tmp_path, capsys):
    run = tmp_path / "run"
    bad = _config_file(tmp_path, dataclasses.replace(TINY_TRAIN, dataset="cityscapes", dataset_options={},
                                                     data_root=str(tmp_path / "nowhere")), "bad.yaml")
    message = cli_error(["train", "--run-dir", str(run), "--config", bad, "--no-progress"], capsys)
    assert "nowhere" in message
    assert json.loads((run / "train_config.json").read_text())["dataset"] == "cityscapes"  # it got that far
    assert not list((run / "checkpoints").glob("*"))
    good = _config_file(tmp_path)
    assert main(["train", "--run-dir", str(run), "--config", good, "--no-progress"]) == 0  # no --restart needed
    straight = train(TINY_TRAIN, tmp_path / "straight", progress=False, log=lambda _: None)
    assert _same_weights(straight, run / "model.pt")
    # once something is trained, another config is refused again
    other = _config_file(tmp_path, dataclasses.replace(TINY_TRAIN, iters=5), "other.yaml")
    capsys.readouterr()
    message = cli_error(["train", "--run-dir", str(run), "--config", other, "--no-progress"], capsys)
    assert "different config (changed: iters)" in message


@pytest.mark.parametrize("assignment,field", [
    ("lr=.nan", "lr"), ("lr=.inf", "lr"), ("lr=-0.1", "lr"), ("min_lr=-1.0", "min_lr"),
    ("head_lr_mult=.nan", "head_lr_mult"), ("weight_decay=-0.01", "weight_decay"), ("betas=[0.9, 1.5]", "betas"),
    (f"seed={2**64}", "seed"), (f"seed={2**63}", "seed"), ("seed=-1", "seed")])
def test_non_finite_or_negative_rates_and_seeds_beyond_64_bits_are_refused(tmp_path, capsys, assignment, field):
    run = tmp_path / "run"
    message = cli_error(["train", "--run-dir", str(run), "--preset", "synthcity", "--set", assignment,
                         "--no-progress"], capsys)
    assert f"field '{field}'" in message
    assert not run.exists()


def test_a_suite_recipe_with_a_bad_rate_is_refused_before_anything_is_written(tmp_path, capsys):
    from ..helpers import corruption_suite

    models = [{"name": "T", "variant": "b0", "train": {"preset": "synthcity", "overrides": {"lr": float("nan")}}}]
    path = corruption_suite(tmp_path, models=models)
    for argv in (["validate", path], ["run", path, "--run-dir", str(tmp_path / "run"), "--no-progress"]):
        message = cli_error(argv, capsys)
        assert "models[0].train.overrides (T)" in message and "field 'lr'" in message
    assert not (tmp_path / "run").exists()


def test_the_largest_seed_trains(tmp_path):
    config = dataclasses.replace(TINY_TRAIN, iters=1, checkpoint_interval=1, seed=2**63 - 1)
    final = train(config, tmp_path / "run", progress=False, log=lambda _: None)
    assert torch.load(final, map_location="cpu", weights_only=True)["train_config"]["seed"] == 2**63 - 1
