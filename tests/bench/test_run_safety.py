"""Run directories that never mix, never escape and answer every mistake with one line: suite and model names
that are paths, a second process on a run directory, a stale lock, a changed checkpoint, --restart (killed too),
a first attempt that failed, a store that is a directory, garbage, read-only or on a full disk, the report of a
partial store, seeds beyond 64 bits."""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import textwrap
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import yaml

import segformer_bench as sb
from segformer_bench.analyses.corruption.store import cell_matrices
from segformer_bench.bench.runner import open_store, run_suite
from segformer_bench.bench.suite import load_suite
from segformer_bench.cli import main

from ..helpers import analyses_suite, cli_error, corruption_suite, run_then_kill_9, stored

CELLS = [[c, s] for c in ("contrast", "gaussian_noise", "brightness") for s in (1, 2, 3, 4, 5)]


def _quiet(**kwargs):
    return {"progress": False, "render": False, "log": lambda _: None, **kwargs}


def _files(root: Path) -> dict[str, bytes]:
    """Every file under `root` with its bytes (what the file system holds, to compare before and after)."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _edit_suite(path: str, **changes) -> str:
    data = yaml.safe_load(Path(path).read_text()) | changes
    Path(path).write_text(yaml.safe_dump(data))
    return path


def _run_cmd(suite_path: str, run_dir: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "segformer_bench", "run", suite_path, "--no-report", "--no-progress", "--run-dir",
            str(run_dir), *extra]


def _wait_for_lock(run_dir: Path, proc: subprocess.Popen, timeout: float = 120) -> None:
    """Until `proc` has written its pid into the run directory's lock file."""
    deadline = time.monotonic() + timeout
    lock = run_dir / ".lock"
    while time.monotonic() < deadline and proc.poll() is None:
        if lock.exists() and f'"pid": {proc.pid}' in lock.read_text():
            return
        time.sleep(0.02)
    raise AssertionError(f"the process never took the lock (exit status {proc.poll()})")


def _wait_for_rows(db_path: Path, query: str, rows: int, proc: subprocess.Popen, timeout: float = 120) -> None:
    """Until `query` (a count) on the store reaches `rows`, while `proc` runs."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with sqlite3.connect(db_path, timeout=1) as db:
                if db.execute(query).fetchone()[0] >= rows:
                    return
        except sqlite3.OperationalError:
            pass
        time.sleep(0.02)
    raise AssertionError(f"the store never reached {rows} rows while the run ran (exit status {proc.poll()})")


# --- 1. names that would escape runs/ and reports/ ------------------------------------------------------------


@pytest.mark.parametrize("name", ["/abs/x", "../../x", "a/b", "a\\b", "..", ".", "", ".hidden"])
def test_a_suite_name_that_is_a_path_is_refused_and_nothing_is_written(tmp_path, monkeypatch, capsys, name):
    suite_dir = tmp_path / "suite"
    suite_dir.mkdir()
    path = corruption_suite(suite_dir, name=name)
    work = tmp_path / "a" / "b" / "work"
    work.mkdir(parents=True)
    monkeypatch.chdir(work)
    before = _files(tmp_path)
    for argv in (["run", path, "--no-progress"], ["validate", path]):
        message = cli_error(argv, capsys)
        assert "field 'name'" in message and repr(name) in message and "rename the suite" in message
    assert _files(tmp_path) == before  # no runs/, no reports/, nothing two levels up
    assert not (tmp_path / "x").exists() and not Path("/abs/x").exists()


@pytest.mark.parametrize("names", [("PE v1", "PE_v1"), ("B0", "b0"), ("..",)])
def test_model_names_that_give_one_training_directory_are_refused(tmp_path, monkeypatch, capsys, names):
    monkeypatch.chdir(tmp_path)
    models = [{"name": n, "variant": "b0", "train": {"preset": "synthcity"}} for n in names]
    path = corruption_suite(tmp_path, models=models)
    before = _files(tmp_path)
    message = cli_error(["run", path, "--no-progress"], capsys)
    assert "training directory" in message or "same directory" in message
    assert all(repr(n) in message for n in names)
    assert _files(tmp_path) == before


# --- 2. one process per run directory ---------------------------------------------------------------------------


def test_a_second_process_on_a_running_run_directory_is_refused_naming_the_first(tmp_path, capsys):
    path = corruption_suite(tmp_path, corruptions={"protocol": "segformer", "cells": CELLS, "backend": "reference"},
                            dataset={"name": "synthcity", "split": "val", "limit": 6,
                                     "options": {"size": [48, 96], "length": 6}})
    run = tmp_path / "run"
    first = subprocess.Popen(_run_cmd(path, run), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        _wait_for_lock(run, first)
        message = cli_error(["run", path, "--run-dir", str(run), "--no-progress", "--no-report"], capsys)
        assert f"pid {first.pid}" in message and socket.gethostname() in message and "in use" in message
        # report only reads: it works while the run writes, and says the run is not finished
        _wait_for_rows(run / "results.sqlite", "SELECT count(*) FROM cells", 1, first)
        assert main(["report", str(run), "--out", str(tmp_path / "live")]) == 0
        still_running = first.poll() is None
        table = (tmp_path / "live" / "table.md").read_text()
        assert ("Incomplete run" in table) or not still_running
    finally:
        _, err = first.communicate(timeout=300)
    assert first.returncode == 0, err.decode()[-2000:]
    assert len(stored(run, cell_matrices)) == len(CELLS) + 1  # the refused process disturbed nothing


_TAKE_LOCK = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from segformer_bench.errors import UserError
    from segformer_bench.image_io import locked_dir
    go = Path(sys.argv[2])
    while not go.exists():
        time.sleep(0.005)
    try:
        with locked_dir(sys.argv[1]):
            print("got", flush=True)
            time.sleep(600)
    except UserError as e:
        print("refused", e, flush=True)
""")


def test_of_processes_taking_the_lock_at_once_one_gets_it_and_a_killed_holder_leaves_it_free(tmp_path):
    run, go = tmp_path / "run", tmp_path / "go"
    env = {**os.environ, "PYTHONPATH": str(Path(sb.__file__).parent.parent)}
    procs = [subprocess.Popen([sys.executable, "-c", _TAKE_LOCK, str(run), str(go)], stdout=subprocess.PIPE,
                              text=True, env=env) for _ in range(3)]
    try:
        time.sleep(1.0)  # let them import; they all wait for the same file
        go.touch()
        first_lines = {p.pid: p.stdout.readline().strip() for p in procs}
        winners = [pid for pid, line in first_lines.items() if line == "got"]
        assert len(winners) == 1, first_lines
        refused = [line for pid, line in first_lines.items() if pid not in winners]
        assert all(line.startswith("refused") and f"pid {winners[0]}" in line for line in refused), first_lines
        holder = next(p for p in procs if p.pid == winners[0])
        os.kill(holder.pid, signal.SIGKILL)  # dies holding the lock; its pid stays in the file
        holder.wait()
        assert f'"pid": {holder.pid}' in (run / ".lock").read_text()
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.communicate()  # waits, and closes the pipe
    suite = load_suite(corruption_suite(tmp_path))
    run_suite(suite, run, **_quiet())  # the kernel released the dead holder's lock: taken over
    assert len(stored(run, cell_matrices)) == 3


# --- 3. a changed checkpoint --------------------------------------------------------------------------------------


def test_a_checkpoint_changed_between_two_runs_is_refused_until_restart(tmp_path, capsys):
    path = corruption_suite(tmp_path)
    run = tmp_path / "run"
    assert main(["run", path, "--run-dir", str(run), "--no-progress", "--no-report"]) == 0
    before = stored(run, cell_matrices)
    torch_model = sb.build_model("b0", 19)  # other weights in the same file
    sb.save_model(torch_model, tmp_path / "b0.pt")
    capsys.readouterr()
    message = cli_error(["run", path, "--run-dir", str(run), "--no-progress", "--no-report"], capsys)
    assert str(tmp_path / "b0.pt") in message and "changed" in message and "--restart" in message
    after = stored(run, cell_matrices)
    assert after.keys() == before.keys() and all(np.array_equal(after[k], before[k]) for k in before)
    assert main(["run", path, "--run-dir", str(run), "--no-progress", "--no-report", "--restart"]) == 0
    digest = hashlib.sha256((tmp_path / "b0.pt").read_bytes()).hexdigest()
    assert stored(run, lambda s: s.models())["B0"]["sha256"] == digest
    assert main(["run", path, "--run-dir", str(tmp_path / "fresh"), "--no-progress", "--no-report"]) == 0
    fresh, restarted = stored(tmp_path / "fresh", cell_matrices), stored(run, cell_matrices)
    assert fresh.keys() == restarted.keys() and all(np.array_equal(fresh[k], restarted[k]) for k in fresh)


# --- 4. --restart reaches the training directories; a failed first attempt poisons nothing --------------------


TINY_RECIPE = {"preset": "synthcity", "overrides": {
    "iters": 2, "batch_size": 2, "crop": [32, 32], "img_scale": [64, 32], "warmup_iters": 1, "workers": 0,
    "checkpoint_interval": 1, "log_interval": 1, "eval_limit": 1, "dataset_options": {"size": [32, 64], "length": 4}}}


def test_restart_retrains_a_model_whose_recipe_changed_so_its_advice_never_loops(tmp_path, capsys):
    import torch

    models = [{"name": "Tiny", "variant": "b0", "train": TINY_RECIPE}]
    path = corruption_suite(tmp_path, models=models)
    run = tmp_path / "run"
    argv = ["run", path, "--run-dir", str(run), "--no-progress", "--no-report"]
    assert main(argv) == 0
    recipe = {**TINY_RECIPE, "overrides": {**TINY_RECIPE["overrides"], "iters": 3}}
    _edit_suite(path, models=[{"name": "Tiny", "variant": "b0", "train": recipe}])
    capsys.readouterr()
    message = cli_error(argv, capsys)
    assert "different suite" in message and "--restart" in message
    assert main([*argv, "--restart"]) == 0  # before: refused by the training directory, asking for --restart again
    final = torch.load(run / "train" / "Tiny" / "model.pt", map_location="cpu", weights_only=True)
    assert final["iteration"] == 3 and final["train_config"]["iters"] == 3


def test_a_first_attempt_that_failed_before_computing_does_not_poison_the_run_directory(tmp_path, capsys):
    path = corruption_suite(tmp_path)
    run = tmp_path / "run"
    argv = ["run", path, "--run-dir", str(run), "--no-progress", "--no-report"]
    # a missing checkpoint is found before anything is written
    _edit_suite(path, models=[{"name": "B0", "variant": "b0", "checkpoint": "missing.pt"}])
    message = cli_error(argv, capsys)
    assert "missing.pt" in message and "no such file" in message
    assert not run.exists()
    # a checkpoint of the wrong number of classes is found once the store is open: it stores nothing
    sb.save_model(sb.build_model("b0", 5), tmp_path / "five.pt")
    _edit_suite(path, models=[{"name": "B0", "variant": "b0", "checkpoint": "five.pt"}])
    message = cli_error(argv, capsys)
    assert "5 classes" in message
    assert stored(run, lambda s: s.holds_rows(["cells", "gallery"])) is False
    # the corrected suite (another suite) runs without --restart, with the numbers of a fresh run
    _edit_suite(path, models=[{"name": "B0", "variant": "b0", "checkpoint": "b0.pt"}])
    assert main(argv) == 0
    run_suite(load_suite(path), tmp_path / "fresh", **_quiet())
    a, b = stored(run, cell_matrices), stored(tmp_path / "fresh", cell_matrices)
    assert a.keys() == b.keys() and len(a) == 3 and all(np.array_equal(a[k], b[k]) for k in a)


def test_kill_9_during_a_restart_leaves_a_run_that_finishes_with_the_uninterrupted_numbers(tmp_path):
    path = corruption_suite(tmp_path, corruptions={"protocol": "segformer", "cells": CELLS, "backend": "reference"})
    run = tmp_path / "run"
    run_suite(load_suite(path), run, **_quiet())  # seed 0
    _edit_suite(path, seed=1)
    proc = subprocess.Popen(_run_cmd(path, run, "--restart"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait_for_rows(run / "results.sqlite", "SELECT count(*) FROM cells WHERE seed = 1", 2, proc)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    with sqlite3.connect(run / "results.sqlite") as db:
        seeds = dict(db.execute("SELECT seed, count(*) FROM cells GROUP BY seed").fetchall())
    assert 0 not in seeds and 2 <= seeds[1] < len(CELLS) + 1  # the old results are gone, the new ones partial
    done = subprocess.run(_run_cmd(path, run), capture_output=True, text=True)  # no --restart: it resumes
    assert done.returncode == 0, done.stderr[-2000:]
    run_suite(load_suite(path), tmp_path / "straight", **_quiet())
    a, b = stored(run, cell_matrices), stored(tmp_path / "straight", cell_matrices)
    assert a.keys() == b.keys() and len(a) == len(CELLS) + 1 and all(np.array_equal(a[k], b[k]) for k in a)


# --- 6. a store that cannot be used ----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["directory", "garbage"])
def test_a_store_that_is_a_directory_or_not_sqlite_is_refused_by_run_and_report(tmp_path, capsys, kind):
    path = corruption_suite(tmp_path)
    run = tmp_path / "run"
    run.mkdir()
    if kind == "directory":
        (run / "results.sqlite").mkdir()
    else:
        (run / "results.sqlite").write_bytes(b"this is not a SQLite file\n" * 50)
    before = _files(tmp_path)
    message = cli_error(["run", path, "--run-dir", str(run), "--no-progress"], capsys)
    assert "results.sqlite" in message and ("is a directory" if kind == "directory" else "not a SQLite") in message
    message = cli_error(["report", str(run), "--out", str(tmp_path / "report")], capsys)
    assert "results.sqlite" in message and ("is a directory" if kind == "directory" else "not a SQLite") in message
    after = _files(tmp_path)
    assert {k: v for k, v in after.items() if not k.endswith(".lock")} == before  # the store untouched
    assert not (tmp_path / "report").exists()


@contextmanager
def read_only(path: Path):
    """`path` read-only for this process: a read-only bind mount for root (whom permissions do not stop), else
    the write bits removed. Skips the test where neither works."""
    if os.geteuid() != 0:
        modes = {p: p.stat().st_mode for p in [path, *path.rglob("*")]}
        for p in modes:
            p.chmod(modes[p] & ~0o222)
        try:
            yield
        finally:
            for p, mode in modes.items():
                p.chmod(mode)
        return
    if subprocess.run(["mount", "--bind", str(path), str(path)], capture_output=True).returncode != 0:
        pytest.skip("root, but cannot bind-mount to make a read-only directory")
    try:
        if subprocess.run(["mount", "-o", "remount,ro,bind", str(path)], capture_output=True).returncode != 0:
            pytest.skip("root, but cannot remount a bind mount read-only")
        yield
    finally:
        subprocess.run(["umount", str(path)], check=True)


def test_a_finished_run_on_a_read_only_disk_is_reported_but_not_run(tmp_path, capsys):
    path = corruption_suite(tmp_path)
    run = tmp_path / "run"
    run_suite(load_suite(path), run, **_quiet())
    before = _files(run)
    with read_only(run):
        with pytest.raises(OSError):
            (run / "probe").write_text("x")  # the OS says it is read-only
        assert main(["report", str(run), "--out", str(tmp_path / "report")]) == 0
        assert "B0" in (tmp_path / "report" / "table.md").read_text()
        capsys.readouterr()
        message = cli_error(["run", path, "--run-dir", str(run), "--no-progress", "--no-report"], capsys)
        assert str(run) in message and ("read-only" in message or "permission denied" in message)
    assert _files(run) == before  # nothing was written: no -wal, no -shm, no lock holder


@contextmanager
def small_disk(path: Path, size: str):
    """A tmpfs of `size` mounted at `path` (root only; skips elsewhere)."""
    path.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                                           capture_output=True).returncode != 0:
        pytest.skip("a real full disk needs root and mount; the SQLite page limit variant covers the rest")
    try:
        yield
    finally:
        subprocess.run(["umount", str(path)], check=True)


def _whole_cells(run: Path) -> dict:
    """The stored cells, each of which decodes whole with its 3 images."""
    cells = stored(run, cell_matrices)
    assert all(m.shape == (3, 19, 19) for m in cells.values())
    return cells


@pytest.mark.parametrize("disk", ["sqlite page limit", "tmpfs"])
def test_a_full_disk_stops_the_run_with_one_line_keeps_whole_cells_and_resumes(tmp_path, monkeypatch, capsys, disk):
    path = corruption_suite(tmp_path, corruptions={"protocol": "segformer", "cells": CELLS, "backend": "reference"})
    argv_for = lambda run: ["run", path, "--run-dir", str(run), "--no-progress"]  # noqa: E731
    if disk == "tmpfs":
        with small_disk(tmp_path / "disk", "1m"):
            run = tmp_path / "disk" / "run"
            filler = tmp_path / "disk" / "filler"
            filler.write_bytes(b"\0" * (1024 * 1024 - 240 * 1024))  # 240 KB left: full mid-run
            message = cli_error(argv_for(run), capsys)
            assert "full" in message or "No space" in message
            assert not [p for p in run.rglob("*") if p.name.endswith(".tmp")]
            filler.unlink()
            cells = _whole_cells(run)
            assert len(cells) < len(CELLS) + 1 and not (tmp_path / "reports").exists()
            assert main(argv_for(run) + ["--no-report"]) == 0
            resumed = _whole_cells(run)
    else:
        # SQLite's own "database or disk is full" (SQLITE_FULL), by capping the pages the store may have
        run = tmp_path / "run"
        open_store(run / "results.sqlite").close()
        with sqlite3.connect(run / "results.sqlite") as db:
            pages = db.execute("PRAGMA page_count").fetchone()[0]
        real_connect = sqlite3.connect

        def capped(*args, **kwargs):
            db = real_connect(*args, **kwargs)
            db.execute(f"PRAGMA max_page_count = {pages + 1}")
            return db

        monkeypatch.setattr(sqlite3, "connect", capped)
        message = cli_error(argv_for(run), capsys)
        assert "results.sqlite" in message and "full" in message and "run the same command again" in message
        monkeypatch.undo()
        cells = _whole_cells(run)
        assert 0 < len(cells) < len(CELLS) + 1
        assert main(argv_for(run) + ["--no-report"]) == 0
        resumed = _whole_cells(run)
    run_suite(load_suite(path), tmp_path / "straight", **_quiet())
    straight = stored(tmp_path / "straight", cell_matrices)
    assert resumed.keys() == straight.keys() and all(np.array_equal(resumed[k], straight[k]) for k in straight)
    assert all(np.array_equal(cells[k], straight[k]) for k in cells)  # what the full disk kept was already right


def test_results_are_committed_with_a_full_sync(tmp_path):
    store = open_store(tmp_path / "results.sqlite")
    try:
        assert store.db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL: on the disk at each commit
        assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        store.close()


# --- 7. the report of a partial store ---------------------------------------------------------------------------


def test_report_of_a_killed_run_renders_what_is_there_and_names_what_is_missing(tmp_path):
    path = corruption_suite(tmp_path, corruptions={"protocol": "segformer", "cells": CELLS, "backend": "reference"},
                            reports=["tables", "html", "gallery"])
    run = tmp_path / "run"
    run_then_kill_9(path, run, "cells", 3)
    done = set(stored(run, cell_matrices))
    expected = [("B0", "clean", 0)] + [("B0", c, s) for c, s in CELLS]
    missing = [f"{c} {s}" for m, c, s in expected if (m, c, s) not in done]
    assert 0 < len(missing) < len(expected)
    assert main(["report", str(run), "--out", str(tmp_path / "report")]) == 0
    table = (tmp_path / "report" / "table.md").read_text()
    assert "Incomplete run" in table and f"Not computed yet ({len(missing)} cell" in table
    caption = table.splitlines()[0]
    named = [m for m in missing if f" {m}," in caption or f" {m} and" in caption or f" {m}." in caption]
    assert len(named) == min(8, len(missing))  # up to 8 named (in table order), then how many more
    assert (f"and {len(missing) - 8} more" in caption) == (len(missing) > 8)
    assert not [f"{c} {s}" for _, c, s in done if f" {c} {s}," in caption or f" {c} {s} and" in caption]
    assert "Incomplete run" in (tmp_path / "report" / "index.html").read_text()


def test_report_marks_a_missing_resolution_test_and_an_erf_model_with_fewer_blocks(tmp_path):
    path = analyses_suite(tmp_path)
    run = tmp_path / "run"
    run_suite(load_suite(path), run, **_quiet())
    with sqlite3.connect(run / "results.sqlite") as db:
        db.execute("DELETE FROM resolution WHERE model = 'PE' AND test = '2x'")
        db.execute("DELETE FROM erf WHERE model = 'DL' AND block > 0")  # the first block: 2 of its 5 images
    assert main(["report", str(run), "--out", str(tmp_path / "report")]) == 0
    resolution = (tmp_path / "report" / "resolution.md").read_text()
    assert "Not computed yet: PE at 2x." in resolution
    pe_row = next(line for line in resolution.splitlines() if line.startswith("| PE"))
    assert pe_row.count("–") == 2  # its 2x mIoU and its change
    erf = (tmp_path / "report" / "erf_area.md").read_text()
    assert "DL (2 of the 5 images of Mix)" in erf
    with sqlite3.connect(run / "results.sqlite") as db:
        db.execute("DELETE FROM erf")
    assert main(["report", str(run), "--out", str(tmp_path / "report2")]) == 0
    page = (tmp_path / "report2" / "index.html").read_text()
    assert "<h2>Effective receptive fields</h2>" in page and "Not computed yet" in page


# --- 8. seeds ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [2**64, 2**63, -1])
def test_a_seed_beyond_64_bits_or_negative_is_refused_naming_the_field(tmp_path, monkeypatch, capsys, seed):
    monkeypatch.chdir(tmp_path)
    path = corruption_suite(tmp_path, seed=seed)
    before = _files(tmp_path)
    for argv in (["run", path, "--no-progress"], ["validate", path]):
        message = cli_error(argv, capsys)
        assert "field 'seed'" in message and str(seed) in message
    assert _files(tmp_path) == before



def test_the_largest_seed_is_stored(tmp_path):
    path = corruption_suite(tmp_path, seed=2**63 - 1)
    run_suite(load_suite(path), tmp_path / "run", **_quiet())
    with sqlite3.connect(tmp_path / "run" / "results.sqlite") as db:
        assert {s for (s,) in db.execute("SELECT seed FROM cells")} == {2**63 - 1}


def test_a_restart_killed_after_its_wipe_resumes_as_that_restart(tmp_path, capsys):
    """A checkpoint model and a trained one whose recipe changed: a `--restart` that dies right after wiping
    the store (before reaching the trained model) is finished by the plain command, which retrains the changed
    model instead of refusing its training directory (and so asking for a second restart)."""
    import torch

    from segformer_bench.bench.runner import _open_run_store
    from segformer_bench.bench.suite import load_suite

    models = [{"name": "B0", "variant": "b0", "checkpoint": "b0.pt"}, {"name": "Tiny", "variant": "b0",
                                                                        "train": TINY_RECIPE}]
    path = corruption_suite(tmp_path, models=models)
    run = tmp_path / "run"
    argv = ["run", path, "--run-dir", str(run), "--no-progress", "--no-report"]
    assert main(argv) == 0
    recipe = {**TINY_RECIPE, "overrides": {**TINY_RECIPE["overrides"], "iters": 3}}
    _edit_suite(path, models=[models[0], {"name": "Tiny", "variant": "b0", "train": recipe}])
    _open_run_store(run, load_suite(path), restart=True).close()  # the restart's first step, then it is killed
    capsys.readouterr()
    assert main(argv) == 0, capsys.readouterr().err
    final = torch.load(run / "train" / "Tiny" / "model.pt", map_location="cpu", weights_only=True)
    assert final["iteration"] == 3 and final["train_config"]["iters"] == 3
