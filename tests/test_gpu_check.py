"""benchmarks/gpu_check.sh, the one prepared GPU run: end to end on tiny sizes on the CPU (every part runs, a
failing and a timed-out part are recorded and the others go on, what comes back is three files), and its
reading of the benchmarks' tables against hand-written logs."""

from __future__ import annotations

import importlib.util
import json
import os
import platform
import sqlite3
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
PARTS = ["gpu-tests", "corruption-tests", "model-speed-b0", "model-speed-b2", "model-speed-b5", "profile",
         "corruption-speed", "protocol", "attack-speed", "smoke"]  # the brief's order


def _gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "benchmarks" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_check"] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


def _statuses(summary: str) -> dict[str, list[str]]:
    """Part name → the cells of its row in summary.md's parts table."""
    rows = {}
    for line in summary.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and cells[0] in PARTS:
            rows[cells[0]] = cells[1:]
    return rows


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> tuple[Path, Path, str]:
    """One tiny CPU run with pytest made to refuse its options (both test parts fail: exit 4, pytest's usage
    error) and the profile given 0.5 s: (output folder, unpacked archive, the script's stdout)."""
    out = tmp_path_factory.mktemp("gpu_check")
    env = dict(os.environ, PYTHON=sys.executable, PYTEST_ADDOPTS="--no-such-pytest-option")
    env.pop("OUT", None)
    done = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), "--tiny", "--device", "cpu", "--out",
                           str(out), "--cap", "profile=0.5"], cwd=out, env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    unpacked = tmp_path_factory.mktemp("unpacked")
    with tarfile.open(out / "gpu_check.tar.gz") as tar:
        tar.extractall(unpacked, filter="data")
    return out, unpacked / "gpu_check", done.stdout


def test_what_comes_back_is_three_files_and_the_archive_holds_every_log(tiny_run):
    out, work, _ = tiny_run
    assert sorted(p.name for p in out.iterdir()) == ["gpu_check.tar.gz", "machine.txt", "summary.md"]
    assert (out / "summary.md").read_text() == (work / "summary.md").read_text()
    ran = [p for p in PARTS if p not in ("model-speed-b2", "model-speed-b5")]
    for part in ran:
        assert (work / f"{part}.log").stat().st_size > 0, part
    assert not (work / "model-speed-b2.log").exists()
    names = [p.name for p in work.rglob("*")]
    assert not [n for n in names if n.endswith((".pt", ".pth", ".safetensors"))]  # weights stay behind
    assert (out / "gpu_check.tar.gz").stat().st_size < 16 * 2**20


def test_machine_txt_names_this_python_and_torch(tiny_run):
    text = (tiny_run[0] / "machine.txt").read_text()
    assert f"python: {platform.python_version()} " in text
    assert f"torch: {torch.__version__} |" in text
    assert "cuda available: False" in text and "device asked for: cpu" in text


def test_every_part_has_a_status_and_failures_do_not_stop_the_rest(tiny_run):
    _, work, stdout = tiny_run
    rows = _statuses((work / "summary.md").read_text())
    assert list(rows) == PARTS
    status = {part: cells[0] for part, cells in rows.items()}
    assert status["gpu-tests"] == status["corruption-tests"] == "failed (exit 4)"
    assert status["profile"] == "timed out (cap 0.5 s)" and float(rows["profile"][1]) < 5
    assert status["model-speed-b2"] == status["model-speed-b5"] == "skipped: --tiny runs B0 only"
    for part in ("model-speed-b0", "corruption-speed", "protocol", "attack-speed", "smoke"):
        assert status[part] == "ok", (part, rows[part])
    assert "--no-such-pytest-option" in (work / "gpu-tests.log").read_text()
    # on a CPU, at tiny sizes, no GPU target counts as measured
    targets = [line for line in (work / "summary.md").read_text().splitlines() if "≥" in line or "≤" in line]
    assert len(targets) == 4 and all(line.rstrip(" |").split("|")[-1].strip().startswith("not measured")
                                     for line in targets)
    assert stdout.rstrip().endswith(targets[-1])


def test_the_benchmarks_ran_with_the_tiny_settings(tiny_run):
    work = tiny_run[1]
    speed = (work / "model-speed-b0.log").read_text()
    assert "| b0 | 64×64 | 1 | fp32 |" in speed and "| b0 | 64×64 | 1 | bf16 |" in speed
    attack = (work / "attack-speed.log").read_text()
    for method in ("pgd", "segpgd", "cospgd"):
        for dtype in ("fp32", "bf16"):
            assert f"| b0 | 1 | {method} | {dtype} |" in attack
    assert "72 cells on one 64×128 SynthCity image" in (work / "corruption-speed.log").read_text()
    protocol = (work / "protocol.log").read_text()
    assert "73 evaluations per image" in protocol and "sliding window 64² / 48" in protocol
    assert "| **total** |" in protocol


def test_the_smoke_run_stored_every_analysis_and_reported(tiny_run):
    """Against the tiny suite by hand: B0 and DeepLabV3+ (B0 PE left out), 2 images; clean + 2 cells; 2
    resolution tests of B0; ERF of both (4 images of 64², block 2 → one block each); 4 attack units (PGD at 0
    and 4/255, SegPGD and CosPGD at 4/255); 2 conditions."""
    work = tiny_run[1]
    assert (work / "smoke" / "report" / "index.html").stat().st_size > 0
    con = sqlite3.connect(f"file:{work / 'smoke' / 'results.sqlite'}?mode=ro", uri=True)
    models = {"B0", "DeepLabV3+ R50"}

    def keys(sql: str) -> set[tuple]:
        return set(con.execute(sql).fetchall())

    assert {m for m, _, _ in keys("SELECT model, corruption, severity FROM cells")} == models
    assert {(c, s) for _, c, s in keys("SELECT model, corruption, severity FROM cells")} >= {("fog", 1),
                                                                                            ("gaussian_noise", 1)}
    assert len(keys("SELECT model, corruption, severity FROM cells")) == 2 * 3
    assert keys("SELECT model, test FROM resolution") == {("B0", "64×64 slide"), ("B0", "2× whole")}
    assert {m for (m,) in keys("SELECT model FROM erf")} == models
    assert len(keys("SELECT model, attack, eps FROM adversarial")) == 2 * 4
    assert keys("SELECT model, condition FROM conditions") == {(m, c) for m in models for c in ("clear", "fog")}
    for (names,) in con.execute("SELECT names FROM conditions"):
        assert len(json.loads(names)) == 2
    con.close()


def test_key_numbers_and_targets_from_hand_written_logs(tmp_path):
    gc = _gpu_check()
    header = ("| variant | input | batch | dtype | ours ms | transformers ms | ratio | ours img/s | transformers img/s "
              "| ours peak MiB | transformers peak MiB |\n|---|---|---|---|---|---|---|---|---|---|---|\n")
    rows = [  # at 1024×2048 ours is best at bf16 batch 8 (240 img/s), transformers' fp32 at batch 8 (100): 2.4×
        "| b0 | 512×512 | 1 | bf16 | 1.0 | 2.0 | 0.50 | 999.0 | 500.0 | 10 | 20 |",
        "| b0 | 1024×2048 | 1 | fp32 | 10.0 | 12.5 | 0.80 | 100.0 | 80.0 | 10 | 20 |",
        "| b0 | 1024×2048 | 8 | fp32 | 64.0 | 80.0 | 0.80 | 125.0 | 100.0 | 10 | 20 |",
        "| b0 | 1024×2048 | 1 | bf16 | 5.0 | 6.0 | 0.83 | 200.0 | 166.7 | 10 | 20 |",
        "| b0 | 1024×2048 | 8 | bf16 | 33.3 | 40.0 | 0.83 | 240.0 | 200.0 | 10 | 20 |",
    ]
    speed = gc.Part("model-speed-b0", [], 1)
    text, found = gc.key_numbers(speed, header + "\n".join(rows) + "\n", tmp_path)
    assert found == {"b0_bf16_whole": 240.0, "b0_vs_transformers_fp32": pytest.approx(2.4)}
    assert "bf16 240.0 img/s (1024×2048 batch 8)" in text
    corruption = gc.Part("corruption-speed", [], 1)
    log = "| corruption | fast s | torch s |\n|---|---|---|\n| fog | 1.0 | 0.1 |\n| **total** | **7.50** | **0.62** |\n"
    assert gc.key_numbers(corruption, log, tmp_path)[1] == {"torch_corruption": 0.62}
    protocol = gc.Part("protocol", [], 1)
    log = ("| part | seconds per image | share |\n|---|---|---|\n| data | 0.10 | 5% |\n"
           "| **total** | **1.70** | 100% |\nextrapolated to Cityscapes' 500 val images: 0.24 h (14.2 min)\n")
    text, found = gc.key_numbers(protocol, log, tmp_path)
    assert found == {"protocol": 1.7} and text == "1.70 s per image, 14.2 min for 500"
    tests = gc.Part("gpu-tests", [], 1)
    assert gc.key_numbers(tests, "....\n7 passed, 1 skipped in 3.10s\n", tmp_path)[0] == "7 passed, 1 skipped in 3.10s"

    parts = [gc.Part(name, [], 1, status="ok") for name in PARTS]
    measured = {"b0_bf16_whole": 240.0, "b0_vs_transformers_fp32": 2.4, "torch_corruption": 0.62, "protocol": 1.7}
    table = gc.summary(parts, measured, None, "# x")
    marks = [line.rstrip(" |").rsplit("|", 1)[-1].strip() for line in table.splitlines() if "≥" in line or "≤" in line]
    assert marks == ["met", "met", "missed", "met"]
    parts[PARTS.index("protocol")].status = "timed out (cap 60 s)"
    table = gc.summary(parts, {}, "a cpu run", "# x")
    marks = [line.rstrip(" |").rsplit("|", 1)[-1].strip() for line in table.splitlines() if "≥" in line or "≤" in line]
    assert marks == ["not measured"] * 3 + ["not measured (timed out (cap 60 s))"]


def test_the_archive_leaves_out_weights_then_what_does_not_fit(tmp_path, monkeypatch):
    gc = _gpu_check()
    work = tmp_path / "gpu_check"
    (work / "smoke" / "report").mkdir(parents=True)
    (work / "cache").mkdir()
    rng = np.random.default_rng(0)
    files = {"summary.md": b"# s\n", "protocol.log": b"log\n", "smoke/train/model.pt": rng.bytes(3000),
             "cache/scene.npz": rng.bytes(3000), "profile_b0_bf16.json": rng.bytes(30_000),  # incompressible
             "smoke/results.sqlite": rng.bytes(30_000), "smoke/report/table.md": b"| a |\n"}
    for name, data in files.items():
        (work / name).parent.mkdir(parents=True, exist_ok=True)
        (work / name).write_bytes(data)

    def members(archive: Path) -> set[str]:
        with tarfile.open(archive) as tar:
            return {m.name.removeprefix("gpu_check/") for m in tar.getmembers()}

    everything = {"summary.md", "protocol.log", "profile_b0_bf16.json", "smoke/results.sqlite", "smoke/report/table.md"}
    assert gc.pack(work, tmp_path / "a.tar.gz") == [] and members(tmp_path / "a.tar.gz") == everything
    monkeypatch.setattr(gc, "ARCHIVE_LIMIT", 50_000)  # both 30 kB files together do not fit, one does
    assert gc.pack(work, tmp_path / "b.tar.gz") == ["the profile trace"]
    assert members(tmp_path / "b.tar.gz") == everything - {"profile_b0_bf16.json"}
    monkeypatch.setattr(gc, "ARCHIVE_LIMIT", 20_000)
    assert len(gc.pack(work, tmp_path / "c.tar.gz")) == 2
    assert members(tmp_path / "c.tar.gz") == {"summary.md", "protocol.log", "smoke/report/table.md"}
    assert (tmp_path / "c.tar.gz").stat().st_size <= 20_000


@pytest.mark.parametrize(("flags", "message"), [
    (["--cap", "nope=3"], "gpu_check: error: --cap 'nope=3': expected PART=SECONDS with PART one of gpu-tests, "),
    (["--parts", "smoke", "smok"], "gpu_check: error: --parts smok: unknown; choose from gpu-tests, "),
    (["--wheels", "nowheels"], "gpu_check: error: --wheels nowheels: no .whl files there"),
])
def test_a_wrong_flag_is_one_line_and_writes_nothing(tmp_path, flags, message):
    env = dict(os.environ, PYTHON=sys.executable)
    done = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), "--tiny", "--device", "cpu", "--out",
                           str(tmp_path / "x"), *flags], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and done.stderr.startswith(message)
    assert not (tmp_path / "x").exists()


def test_an_out_that_is_a_file_is_one_line_and_left_alone(tmp_path):
    (tmp_path / "x").write_text("mine")
    env = dict(os.environ, PYTHON=sys.executable)
    done = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), "--tiny", "--device", "cpu", "--out",
                           str(tmp_path / "x")], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and done.stderr.count("\n") == 1
    assert "exists and is not a directory; choose another --out" in done.stderr
    assert (tmp_path / "x").read_text() == "mine"
