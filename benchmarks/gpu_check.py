"""The one prepared GPU run: every GPU promise of the project measured in one command, ≤ 8 minutes on one H200.

Runs, in order, each part in its own process with its own time cap (a part that fails or runs past its cap is
recorded as such and the next one starts), each part's output in its own log:

  gpu-tests         the `gpu`-marked tests (pytest -m gpu on the test files that hold them)
  corruption-tests  the torch corruption backend's tests against the reference, on the device (the README's
                    backend table: the exact rows are to hold up to ±1 on CUDA)
  model-speed-bN    benchmarks/model_speed.py for B0, B2 and B5 in fp32, bf16 and fp16, batch 1 and 8, square
                    inputs and whole 1024×2048 images, against transformers
  profile           a torch.profiler trace of B0's whole-image bf16 evaluation forward (profile_b0_bf16.json,
                    chrome://tracing or Perfetto; profile_b0_bf16.txt, the operators by device time)
  corruption-speed  benchmarks/corruption_speed.py --skip-reference with the torch backend on the device, 72 cells
  protocol          benchmarks/protocol_time.py: B0, 8 images, torch backend, bf16 autocast
  attack-speed      benchmarks/attack_speed.py: PGD, SegPGD, CosPGD, fp32 and bf16
  smoke             `segformer-bench run` of suites/gpu_smoke.yaml on the device (all five analyses), then its report

and writes, under --out (default: $OUT when set, else runs/gpu_check), three files: machine.txt (nvidia-smi,
driver, torch/CUDA/cuDNN versions, GPU, Python and package versions), summary.md (part × status × seconds × the
key numbers, and the issue's targets marked met / missed / not measured) and gpu_check.tar.gz (everything: both
files, every log, the profile, the smoke run's store and report; model weights left out). The caps add up to at
most --budget seconds (default 470), so the whole run ends inside 8 minutes by construction.

Nothing is installed from a registry. Modules a part needs are checked first; a part whose module is missing is
recorded as "skipped: <module> missing". A machine without imagecorruptions (the reference corruption backend,
whose frost images the fast and torch backends read too) can be given its pure-Python wheel: --wheels DIR
installs DIR/*.whl into a temporary folder with pip's --no-index (no registry) for the parts' PYTHONPATH.

    benchmarks/gpu_check.sh                                  # on the GPU machine, from the repository root
    benchmarks/gpu_check.sh --wheels .whl                    # with carried wheels (imagecorruptions, cospgd)
    benchmarks/gpu_check.sh --tiny --device cpu --out /tmp/x # every part end to end on tiny sizes (the CI test)

Extra flags for model_speed.py (e.g. the fast path's, once it has them) come from $GPU_CHECK_MODEL_SPEED_FLAGS;
--cap PART=SECONDS changes one part's cap; --parts PART… runs only those (a rerun of the ones that failed).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import re
import shlex
import shutil
import signal
import sqlite3
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import NoReturn

ROOT = Path(__file__).resolve().parent.parent

# Modules every part needs (the package's own imports), then each part's own.
CORE = ["torch", "numpy", "yaml", "PIL", "scipy", "safetensors", "tqdm"]
OPTIONAL = ["cospgd", "torchmetrics", "cityscapesscripts", "markdown_it"]  # test oracles; recorded, not needed
WEIGHTS = (".pt", ".pth", ".safetensors", ".bin", ".ckpt")  # left out of the archive (the smoke run's models)
ARCHIVE_LIMIT = 15 * 2**20  # what comes back from the GPU machine: 16 MiB a file


@dataclasses.dataclass
class Part:
    """One part of the run: its commands (run one after the other within the cap), the modules it needs, and
    its time cap in seconds."""

    name: str
    commands: list[list[str]]
    cap: float
    needs: list[str] = dataclasses.field(default_factory=list)
    skip: str | None = None  # a reason decided before it runs (e.g. --tiny runs B0 only)
    status: str = "not run"
    seconds: float = 0.0
    key: str = ""


def model_speed_flags() -> list[str]:
    """Extra model_speed.py flags (the lead extends these: compile, channels-last… once model_speed has them)."""
    return shlex.split(os.environ.get("GPU_CHECK_MODEL_SPEED_FLAGS", ""))


def plan(device: str, tiny: bool, work: Path, profile: bool) -> list[Part]:
    """The parts in order, with the commands and caps of a full GPU run or of a tiny one."""
    py = sys.executable
    bench = ROOT / "benchmarks"
    marked = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "tests").rglob("test_*.py")
                    if p.name != "test_gpu_check.py" and "pytest.mark.gpu" in p.read_text(encoding="utf-8"))
    pytest = [py, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "addopts=-ra --strict-markers"]
    parts = [
        Part("gpu-tests", [[*pytest, "-m", "gpu", *marked]], 45,  # test_weather's holds the reference
             ["pytest", "cv2", "skimage", "imagecorruptions"]),
        Part("corruption-tests", [[*pytest, "-m", "not slow", "tests/corruptions", "-k", "torch"]], 35,
             ["pytest", "cv2", "skimage", "imagecorruptions"]),
    ]
    for variant, cap in (("b0", 50), ("b2", 50), ("b5", 75)):
        if tiny:
            args = ["--sizes", "64", "--batches", "1", "--dtypes", "fp32", "bf16", "--rounds", "1"]
        else:
            args = ["--sizes", "512", "1024", "--whole", "--batches", "1", "8", "--dtypes", "fp32", "bf16", "fp16",
                    "--rounds", "5"]
        parts.append(Part(f"model-speed-{variant}", [[py, str(bench / "model_speed.py"), "--variants", variant,
                                                      "--device", device, *args, *model_speed_flags()]],
                          cap, ["transformers"], skip="--tiny runs B0 only" if tiny and variant != "b0" else None))
    size = ["--size", "64", "128"] if tiny else []
    parts += [
        Part("profile", [[py, str(Path(__file__).resolve()), "profile", "--device", device, "--out", str(work),
                          *size]], 20, skip=None if profile else "--no-profile"),
        Part("corruption-speed", [[py, str(bench / "corruption_speed.py"), "--skip-reference", "--device", device,
                                   *(size or ["--threads", "8"])]], 40, ["cv2", "skimage", "imagecorruptions"]),
        Part("protocol", [[py, str(bench / "protocol_time.py"), "--variant", "b0", "--images", "1" if tiny else "8",
                           "--backend", "torch", "--autocast", "bf16", "--device", device, *size]], 60,
             ["cv2", "skimage", "imagecorruptions"]),
        Part("attack-speed", [[py, str(bench / "attack_speed.py"), "--device", device,
                               *(["--size", "32", "64", "--steps", "2", "--rounds", "1"] if tiny
                                 else ["--batches", "1", "8"])]], 35),
        Part("smoke", [[py, "-m", "segformer_bench", "run", str(work / "gpu_smoke.yaml"), "--run-dir",
                        str(work / "smoke"), "--no-report", "--no-progress"],
                       [py, "-m", "segformer_bench", "report", str(work / "smoke"), "--out",
                        str(work / "smoke" / "report")]], 60,
             ["cv2", "skimage", "imagecorruptions", "pandas", "matplotlib", "tabulate"]),
    ]
    assert sum(p.cap for p in parts) <= 470  # with --budget's default: the whole run inside 8 minutes
    if tiny:  # a check that every part works, on a CPU that may be busy: time is not what it measures
        for p in parts:
            p.cap = 300
    return parts


# ------------------------------------------------------------------------------------------------------------------
# The smoke suite


def smoke_suite(device: str, tiny: bool) -> dict:
    """suites/gpu_smoke.yaml on `device`; with `tiny`, shrunk to a few CPU seconds (two cells, two images, two
    training iterations, 64×128 scenes, no PE model, no plots)."""
    import yaml

    suite = yaml.safe_load((ROOT / "suites" / "gpu_smoke.yaml").read_text(encoding="utf-8"))
    suite["device"] = device
    if not tiny:
        return suite
    suite["dataset"] |= {"limit": 2, "options": {"size": [64, 128], "length": 2, "cache": True}}
    suite["models"] = [m for m in suite["models"] if m["name"] != "B0 PE"]
    for section in ("corruptions", "resolution"):
        suite[section]["models"] = [m for m in suite[section]["models"] if m != "B0 PE"]
    suite["reports"] = ["tables", "html", "gallery"]
    for model in suite["models"]:
        model["train"]["overrides"] |= {"dataset_options": {"size": [64, 128], "length": 4, "cache": True},
                                        "crop": [64, 64],
                                        "img_scale": [128, 64], "iters": 2, "batch_size": 2, "warmup_iters": 1,
                                        "log_interval": 1, "checkpoint_interval": 2, "eval_limit": 1}
    suite["corruptions"]["cells"] = [["fog", 1], ["gaussian_noise", 1]]
    suite["resolution"]["tests"] = [
        {"name": "64×64 slide", "eval": {"preset": "whole", "overrides": {"mode": "slide", "crop": [64, 64],
                                                                          "stride": [48, 48]}}},
        {"name": "2× whole", "dataset_options": {"size": [128, 256]}, "eval": {"preset": "whole"}}]
    suite["erf"] |= {"images": 2, "size": [64, 64], "block": 2}
    for a in suite["adversarial"]["attacks"]:
        a["steps"] = 1
    suite["conditions"]["conditions"] = suite["conditions"]["conditions"][:2]
    return suite


SMOKE_TABLES = {"corruption": "cells", "resolution": "resolution", "erf": "erf", "adversarial": "adversarial",
                "conditions": "conditions"}


def smoke_rows(store: Path) -> dict[str, int]:
    """Rows per analysis in the smoke run's store (read-only)."""
    con = sqlite3.connect(f"file:{store}?mode=ro", uri=True)
    try:
        return {a: con.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for a, t in SMOKE_TABLES.items()}
    finally:
        con.close()


# ------------------------------------------------------------------------------------------------------------------
# Machine and versions


def probe_modules(env: dict[str, str], names: list[str]) -> dict[str, str | None]:
    """Each module's distribution version ('?' when unknown), or None when it cannot be found, as the parts will
    see them (found, not imported: imagecorruptions imports only through corruptions.reference's fixes)."""
    code = ("import importlib.metadata as md, importlib.util, json, sys\n"
            "dists = md.packages_distributions()\n"
            "out = {}\n"
            "for name in sys.argv[1:]:\n"
            "    if importlib.util.find_spec(name) is None:\n"
            "        out[name] = None; continue\n"
            "    try:\n"
            "        out[name] = md.version(dists.get(name, [name])[0])\n"
            "    except md.PackageNotFoundError:\n"
            "        out[name] = '?'\n"
            "print(json.dumps(out))\n")
    import json

    done = subprocess.run([sys.executable, "-c", code, *names], env=env, cwd=ROOT, capture_output=True, text=True,
                          timeout=120, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def machine_report(env: dict[str, str], modules: dict[str, str | None], device: str) -> tuple[str, bool]:
    """machine.txt's text, and whether torch sees a CUDA device."""
    lines = [f"date (UTC): {time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime())}",
             f"platform: {platform.platform()}, {platform.machine()}, {os.cpu_count()} CPU cores",
             f"python: {sys.version.split()[0]} ({sys.executable})", f"device asked for: {device}"]
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=10)
        lines.append(f"checkout: {commit.stdout.strip() or 'not a git checkout'}")
    except (OSError, subprocess.TimeoutExpired):
        lines.append("checkout: git not available")
    code = ("import torch\n"
            "print('torch:', torch.__version__, '| CUDA build:', torch.version.cuda, '| cuDNN:',"
            " torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None)\n"
            "print('cuda available:', torch.cuda.is_available())\n"
            "for i in range(torch.cuda.device_count()):\n"
            "    p = torch.cuda.get_device_properties(i)\n"
            "    print(f'gpu {i}: {p.name}, {p.total_memory / 2**30:.1f} GiB, capability {p.major}.{p.minor}, '\n"
            "          f'{p.multi_processor_count} SMs')\n"
            "print('torch threads:', torch.get_num_threads())\n")
    cuda = False
    if modules.get("torch"):
        done = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True,
                              timeout=120)
        lines += done.stdout.strip().splitlines() + done.stderr.strip().splitlines()[-3:]
        cuda = "cuda available: True" in done.stdout
    lines.append("modules: " + ", ".join(f"{m} {v}" if v else f"{m} MISSING" for m, v in modules.items()))
    if shutil.which("nvidia-smi"):
        smi = subprocess.run(["nvidia-smi"], capture_output=True, text=True, timeout=30)
        query = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total,clocks.max.sm,"
                                "power.limit", "--format=csv"], capture_output=True, text=True, timeout=30)
        lines += ["", "nvidia-smi --query-gpu:", query.stdout.strip(), "", "nvidia-smi:", smi.stdout.strip()]
    else:
        lines.append("nvidia-smi: not found")
    return "\n".join(lines) + "\n", cuda


# ------------------------------------------------------------------------------------------------------------------
# Running the parts


def run_part(part: Part, log: Path, env: dict[str, str], cap: float) -> None:
    """Run the part's commands one after the other into `log`, killed (its whole process group) at `cap` seconds."""
    t0 = time.perf_counter()
    with log.open("w", encoding="utf-8") as out:
        for command in part.commands:
            left = cap - (time.perf_counter() - t0)
            out.write(f"$ {shlex.join(command)}\n")
            out.flush()
            if left <= 0:
                part.status = f"timed out (cap {round(cap, 1):g} s)"
                break
            proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT, env=env,
                                    start_new_session=True)
            try:
                rc = proc.wait(timeout=left)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                part.status = f"timed out (cap {round(cap, 1):g} s)"
                break
            if rc != 0:
                part.status = f"failed (exit {rc})"
                break
        else:
            part.status = "ok"
    part.seconds = time.perf_counter() - t0


def table_rows(text: str, columns: int) -> list[list[str]]:
    """The cells of the Markdown table rows with `columns` cells (separator rows left out)."""
    rows = []
    for line in text.splitlines():
        if line.startswith("|") and not line.startswith("|---"):
            cells = [c.strip().strip("*") for c in line.strip().strip("|").split("|")]
            if len(cells) == columns:
                rows.append(cells)
    return rows


def number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def key_numbers(part: Part, log: str, work: Path) -> tuple[str, dict[str, float]]:
    """The part's key numbers as text, and the measurements the targets read (by target name)."""
    found: dict[str, float] = {}
    if part.name.endswith("tests"):
        m = re.findall(r"^=*\s*(\d+ (?:passed|failed|skipped|error|deselected)[^=\n]*?)\s*(?:=+)?$", log, re.M)
        return (m[-1] if m else ""), found
    if part.name.startswith("model-speed"):
        rows = table_rows(log, 11)[1:]  # variant, input, batch, dtype, ours ms, theirs ms, ratio, ours, theirs, …
        whole = [r for r in rows if r[1] == "1024×2048"]
        shown = whole or rows
        best: dict[str, tuple[float, str]] = {}
        for r in shown:
            v = number(r[7])
            if v is not None and v > best.get(r[3], (-1.0, ""))[0]:
                best[r[3]] = (v, f"{r[1]} batch {r[2]}")
        text = "; ".join(f"{d} {v:.1f} img/s ({where})" for d, (v, where) in best.items())
        if part.name == "model-speed-b0" and whole:
            if "bf16" in best:
                found["b0_bf16_whole"] = best["bf16"][0]
            # throughput against throughput: ours at its best (bf16 or fp16, any batch) ÷ transformers' best fp32
            ours = [v for r in whole if r[3] in ("bf16", "fp16") and (v := number(r[7])) is not None]
            theirs = [v for r in whole if r[3] == "fp32" and (v := number(r[8]))]
            if ours and theirs:
                found["b0_vs_transformers_fp32"] = max(ours) / max(theirs)
                text += f"; ours best bf16/fp16 ÷ transformers' best fp32: {max(ours) / max(theirs):.2f}×"
        return text, found
    if part.name == "corruption-speed":
        header = next((line for line in log.splitlines() if line.startswith("| corruption |")), "")
        columns = [c.strip() for c in header.strip().strip("|").split("|")]
        total = next((r for r in table_rows(log, len(columns)) if r[0] == "total"), None) if header else None
        if total is None:
            return "", found
        text = ", ".join(f"{c} {v}" for c, v in zip(columns[1:], total[1:], strict=False) if c.endswith(" s"))
        if "torch s" in columns and number(total[columns.index("torch s")]) is not None:
            found["torch_corruption"] = number(total[columns.index("torch s")])
        return f"72 cells, one image: {text}", found
    if part.name == "protocol":
        total = next((r for r in table_rows(log, 3) if r[0] == "total"), None)
        if total and number(total[1]) is not None:
            found["protocol"] = number(total[1])
            extrapolated = re.search(r"500 val images: .*\((.*) min\)", log)
            return (f"{total[1]} s per image" + (f", {extrapolated.group(1)} min for 500" if extrapolated else "")), \
                found
        return "", found
    if part.name == "attack-speed":
        rows = table_rows(log, 7)[1:]
        return "; ".join(f"{r[0]} b{r[1]} {r[2]} {r[3]} {r[6]} img/s" for r in rows if r[1] == rows[0][1]), found
    if part.name == "smoke":
        store = work / "smoke" / "results.sqlite"
        rows = smoke_rows(store) if store.exists() else {}
        index = (work / "smoke" / "report" / "index.html").exists()
        return (", ".join(f"{a} {n} rows" for a, n in rows.items()) + f"; report {'written' if index else 'missing'}"
                if rows else ""), found
    if part.name == "profile":
        return ", ".join(p.name for p in sorted(work.glob("profile_*"))), found
    return "", found


# The issue's targets: (name, text, the measurement it reads, the comparison).
TARGETS = [
    ("b0_bf16_whole", "B0 on a whole 1024×2048 image ≥ 200 images/s (bf16, best batch)", "model-speed-b0",
     lambda v: v >= 200, "{:.1f} img/s"),
    ("b0_vs_transformers_fp32", "B0 whole image ≥ 2× transformers' fp32 throughput (best batch of each)",
     "model-speed-b0", lambda v: v >= 2, "{:.2f}×"),
    ("torch_corruption", "torch corruption backend ≤ 0.5 s per 1024×2048 image for all 72 cells", "corruption-speed",
     lambda v: v <= 0.5, "{:.2f} s"),
    ("protocol", "segformer protocol for B0 (clean + 72 cells, sliding window) ≤ 1.8 s per image", "protocol",
     lambda v: v <= 1.8, "{:.2f} s"),
]


def summary(parts: list[Part], found: dict[str, float], measured: str | None, header: str) -> str:
    """summary.md: the parts table and the targets. `measured` is None on a real GPU run, else why no figure
    counts (a CPU run, --tiny)."""
    lines = [header, "", "| part | status | seconds | key numbers |", "|---|---|---|---|"]
    lines += [f"| {p.name} | {p.status} | {p.seconds:.1f} | {p.key.replace('|', '/')} |" for p in parts]
    lines += ["", "| target | measured | status |", "|---|---|---|"]
    by_name = {p.name: p for p in parts}
    for name, text, part, ok, fmt in TARGETS:
        value = found.get(name)
        if value is None:
            status = f"not measured ({by_name[part].status})" if by_name[part].status != "ok" else "not measured"
            shown = "–"
        else:
            shown = fmt.format(value)
            status = f"not measured ({measured})" if measured else ("met" if ok(value) else "missed")
        lines.append(f"| {text} | {shown} | {status} |")
    return "\n".join(lines) + "\n"


def pack(work: Path, archive: Path) -> list[str]:
    """`work` into `archive` (tar.gz) without model weights and the scene cache. Over what comes back from the GPU
    machine, it leaves out more, in this order, until it fits: the profile trace, then the smoke run's store and
    plots (its Markdown and CSV tables stay). Returns what it left out beyond the weights."""
    tiers = [("the profile trace", lambda rel: rel.name.startswith("profile_") and rel.suffix == ".json"),
             ("the smoke run's store and plots", lambda rel: rel.parts[0] == "smoke"
              and rel.suffix not in (".md", ".csv", ".log"))]
    for k in range(len(tiers) + 1):
        leave = [test for _, test in tiers[:k]]
        with tarfile.open(archive, "w:gz") as tar:
            for path in sorted(work.rglob("*")):
                rel = path.relative_to(work)
                if (path.is_file() and not path.name.endswith(WEIGHTS) and rel.parts[0] != "cache"
                        and not any(test(rel) for test in leave)):
                    tar.add(path, arcname=str(Path(work.name) / rel))
        if archive.stat().st_size <= ARCHIVE_LIMIT:
            break
    return [label for label, _ in tiers[:k]]


def _refuse(message: str) -> NoReturn:
    """A bad flag: one line naming it and the fix, exit status 2 (as argparse's own errors), nothing written."""
    print(f"gpu_check: error: {message}", file=sys.stderr)
    raise SystemExit(2)


def check(args: argparse.Namespace) -> int:
    out = Path(args.out).resolve()
    work = out / "gpu_check"
    if out.exists() and not out.is_dir():
        _refuse(f"{out} exists and is not a directory; choose another --out")
    parts = plan(args.device, args.tiny, work, not args.no_profile)
    for spec in args.cap:
        name, _, seconds = spec.partition("=")
        if name not in {p.name for p in parts} or number(seconds) is None:
            _refuse(f"--cap {spec!r}: expected PART=SECONDS with PART one of "
                             + ", ".join(p.name for p in parts))
        next(p for p in parts if p.name == name).cap = float(seconds)
    unknown = sorted(set(args.parts or []) - {p.name for p in parts})
    if unknown:
        _refuse(f"--parts {', '.join(unknown)}: unknown; choose from "
                         + ", ".join(p.name for p in parts))
    for p in parts:
        if args.parts and p.name not in args.parts:
            p.skip = "not in --parts"
    wheels = sorted(str(p) for p in Path(args.wheels).glob("*.whl")) if args.wheels else []
    if args.wheels and not wheels:
        _refuse(f"--wheels {args.wheels}: no .whl files there; name the folder of the "
                         "carried wheels")
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    started = time.perf_counter()
    deadline = time.perf_counter() + (args.budget or (3000 if args.tiny else 470))
    # the smoke run's SynthCity scenes are rendered once into the work folder (not archived)
    env = dict(os.environ, PYTHONUNBUFFERED="1", SEGFORMER_BENCH_CACHE_DIR=str(work / "cache"))
    if args.tiny:  # tiny tensors: a thread pool only adds synchronisation (and stalls on a busy machine)
        env |= {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    site = None
    if args.wheels:
        site = Path(tempfile.mkdtemp(prefix="gpu_check_site_"))
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
                        "--no-cache-dir", "--target", str(site), *wheels], check=True)
        env["PYTHONPATH"] = os.pathsep.join([str(site), env["PYTHONPATH"]])

    needed = sorted({m for p in parts for m in p.needs} | set(CORE))
    modules = probe_modules(env, needed + OPTIONAL)
    text, cuda = machine_report(env, modules, args.device)
    (work / "machine.txt").write_text(text + (f"wheels installed from {args.wheels}\n" if args.wheels else ""),
                                      encoding="utf-8")
    import yaml

    (work / "gpu_smoke.yaml").write_text(yaml.safe_dump(smoke_suite(args.device, args.tiny), sort_keys=False,
                                                        allow_unicode=True), encoding="utf-8")

    found: dict[str, float] = {}
    for part in parts:
        missing = [m for m in CORE + part.needs if not modules.get(m)]
        left = deadline - time.perf_counter() - 5  # a few seconds for the summary and the archive
        if part.skip:
            part.status = f"skipped: {part.skip}"
        elif missing:
            part.status = f"skipped: {', '.join(missing)} missing"
        elif args.device.startswith("cuda") and not cuda:
            part.status = "skipped: torch sees no CUDA device"
        elif left < 1:
            part.status = "skipped: no time left in the budget"
        else:
            print(f"gpu_check: {part.name} (cap {min(part.cap, left):.0f} s)", flush=True)
            run_part(part, work / f"{part.name}.log", env, min(part.cap, left))
            log = (work / f"{part.name}.log").read_text(encoding="utf-8", errors="replace")
            try:
                part.key, numbers = key_numbers(part, log, work)
                found |= numbers
            except (ValueError, IndexError, sqlite3.Error) as e:  # an unexpected log: say so, keep going
                part.key = f"could not read the log ({type(e).__name__}: {e})"
        print(f"gpu_check: {part.name}: {part.status} {part.key}", flush=True)

    measured = None
    if args.tiny:
        measured = "--tiny"
    elif not args.device.startswith("cuda"):
        measured = f"a {args.device} run"
    header = (f"# gpu_check summary\n\n{text.splitlines()[0]}; device {args.device}"
              + (", tiny sizes" if args.tiny else "") + f"; {time.perf_counter() - started:.0f} s in all")
    gpu = [line for line in text.splitlines() if line.startswith(("gpu 0:", "torch:"))]
    header += "".join(f"\n\n{line}" for line in gpu)
    (work / "summary.md").write_text(summary(parts, found, measured, header), encoding="utf-8")
    left_out = pack(work, out / "gpu_check.tar.gz")
    if left_out:
        with (work / "summary.md").open("a", encoding="utf-8") as f:
            f.write(f"\nLeft out of the archive (over {ARCHIVE_LIMIT // 2**20} MiB): {', '.join(left_out)}\n")
    for name in ("summary.md", "machine.txt"):
        shutil.copyfile(work / name, out / name)
    if not args.keep:
        shutil.rmtree(work)
    if site is not None:
        shutil.rmtree(site, ignore_errors=True)
    print((out / "summary.md").read_text(encoding="utf-8"))
    return 0


# ------------------------------------------------------------------------------------------------------------------
# The profile part


def profile(args: argparse.Namespace) -> int:
    """A torch.profiler trace of B0's evaluation forward (whole image, bf16 autocast, random weights), as the
    analyses run it (``segment_batch``): three warm-up runs, then three profiled ones."""
    import torch
    from torch.profiler import ProfilerActivity

    import segformer_bench as sb
    from segformer_bench.engine.inference import AUTOCAST, EvalSettings, segment_batch

    device = torch.device(args.device)
    h, w = args.size
    model = sb.build_model("b0", 19).eval().to(device)
    images = torch.randint(0, 256, (1, 3, h, w), dtype=torch.uint8, device=device)
    settings = EvalSettings(mode="whole", autocast="bf16")

    def forward() -> None:
        with torch.inference_mode(), torch.autocast(device.type, dtype=AUTOCAST["bf16"]):
            segment_batch(model, images, settings)
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    for _ in range(3):
        forward()
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with torch.profiler.profile(activities=activities, record_shapes=True) as prof:
        for _ in range(3):
            forward()
    out = Path(args.out)
    prof.export_chrome_trace(str(out / "profile_b0_bf16.json"))
    sort = "cuda_time_total" if device.type == "cuda" else "cpu_time_total"
    table = prof.key_averages().table(sort_by=sort, row_limit=40)
    (out / "profile_b0_bf16.txt").write_text(f"B0, whole {h}×{w} image, bf16 autocast, batch 1, 3 runs\n{table}\n",
                                             encoding="utf-8")
    print(table)
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="command")
    p = sub.add_parser("profile", help="(a part) the B0 bf16 whole-image profile")
    p.add_argument("--device", default="cuda")
    p.add_argument("--out", required=True)
    p.add_argument("--size", type=int, nargs=2, default=[1024, 2048], metavar=("H", "W"))
    ap.add_argument("--device", default="cuda", help="cuda (default), cuda:N or cpu")
    ap.add_argument("--out", default=os.environ.get("OUT") or str(ROOT / "runs" / "gpu_check"),
                    help="output folder (default: $OUT when set, else runs/gpu_check)")
    ap.add_argument("--tiny", action="store_true", help="tiny sizes: every part end to end in seconds (on a CPU)")
    ap.add_argument("--budget", type=float, default=None,
                    help="seconds for all parts together (default 470; with --tiny 3000)")
    ap.add_argument("--cap", action="append", default=[], metavar="PART=SECONDS", help="one part's time cap")
    ap.add_argument("--parts", nargs="+", metavar="PART", help="run only these parts (e.g. a rerun of failed ones)")
    ap.add_argument("--no-profile", action="store_true", help="leave out the profiler trace")
    ap.add_argument("--wheels", metavar="DIR", help="install DIR/*.whl (no registry) for the parts first")
    ap.add_argument("--keep", action="store_true", help="keep the unpacked folder OUT/gpu_check next to the archive")
    args = ap.parse_args(argv)
    return profile(args) if args.command == "profile" else check(args)


if __name__ == "__main__":
    raise SystemExit(main())
