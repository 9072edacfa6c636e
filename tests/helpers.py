"""Helpers the test modules share: reading a run's store, killing a run with SIGKILL, running a suite on two
gloo ranks, and loading a report page in headless Chromium."""

from __future__ import annotations

import re
import shutil
import sqlite3
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest

from segformer_bench.bench.runner import open_store, run_suite
from segformer_bench.bench.suite import load_suite

T = TypeVar("T")


def stored(run_dir: str | Path, read: Callable[..., T]) -> T:
    """`read(store)` on a run directory's results store, e.g. ``stored(run, cells.cell_matrices)``."""
    store = open_store(Path(run_dir) / "results.sqlite")
    try:
        return read(store)
    finally:
        store.close()


def run_then_kill_9(suite_path: str, run_dir, table: str, rows: int) -> list[str]:
    """Start `segformer-bench run` in a subprocess and SIGKILL it once `table` of its store has `rows` rows;
    returns the command line (without the run directory) for the reruns."""
    import os
    import signal
    import subprocess
    import sys
    import time

    cmd = [sys.executable, "-m", "segformer_bench", "run", suite_path, "--no-report", "--no-progress", "--run-dir"]
    proc = subprocess.Popen([*cmd, str(run_dir)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    db = run_dir / "results.sqlite"
    while time.monotonic() < deadline and proc.poll() is None:
        if db.exists():
            try:
                with sqlite3.connect(db, timeout=1) as conn:
                    if conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0] >= rows:  # noqa: S608
                        break
            except sqlite3.OperationalError:
                pass
        time.sleep(0.02)
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    return cmd


def _run_rank(rank, world, port, suite_path, run_dir):
    import os

    import torch

    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    torch.set_num_threads(1)
    try:
        run_suite(load_suite(suite_path), run_dir, progress=False, render=False, log=lambda _: None)
    finally:
        torch.distributed.destroy_process_group()


def run_two_gloo_ranks(suite_path: str, run_dir) -> None:
    """`run_suite` in two processes joined by a gloo process group, as torchrun would start them."""
    import socket

    import torch

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    torch.multiprocessing.spawn(_run_rank, args=(2, port, suite_path, str(run_dir)), nprocs=2, join=True)



def _browser() -> str | None:
    return next((path for name in ("chromium", "chromium-browser", "google-chrome") if (path := shutil.which(name))),
                None)


def images_loaded_in_browser(page: Path, profile: Path) -> tuple[int, int]:
    """(decoded, all) images of `page` after Chromium's headless load event (the page's script counts them)."""
    done = subprocess.run(
        [_browser(), "--headless", "--disable-gpu", "--no-sandbox", "--no-first-run", f"--user-data-dir={profile}",
         "--virtual-time-budget=5000", "--dump-dom", page.resolve().as_uri()],
        capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    loaded = re.search(r'data-images-loaded="(\d+)/(\d+)"', done.stdout)
    assert loaded, "the page's load script did not run"
    return int(loaded.group(1)), int(loaded.group(2))


needs_browser = pytest.mark.skipif(_browser() is None, reason="no Chromium/Chrome binary on PATH; install Debian's "
                                   "chromium to run this check")

