"""How fast and small the refusal of hostile YAML is: a 9-level alias bomb under a suite's dataset.options
(387 million values once expanded) and 100 000 nested flow lists, through `segformer-bench validate`'s loader.

Usage: python benchmarks/hostile_yaml.py   (prints seconds and peak Python allocation per case)
"""

from __future__ import annotations

import platform
import tempfile
import time
import tracemalloc
from pathlib import Path

import yaml

import segformer_bench as sb
from segformer_bench.bench.suite import load_suite
from segformer_bench.config import ConfigError


def bomb() -> str:
    lines = ["version: 1", "name: bomb", "models: [{name: B0, variant: b0, checkpoint: b0.pt}]",
             "dataset:", "  name: synthcity", "  options:", '    a0: &a0 ["x","x","x","x","x","x","x","x","x"]']
    lines += [f"    a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 9)]
    return "\n".join(lines) + "\n"


def deep() -> str:
    return "version: 1\nname: deep\nmodels: " + "[" * 100_000 + "\n"


def main() -> None:
    print(f"# machine: {platform.machine()}, python {platform.python_version()}, PyYAML {yaml.__version__}, "
          f"segformer-bench {sb.__version__}")
    with tempfile.TemporaryDirectory() as tmp:
        for name, text in (("alias bomb", bomb()), ("100k nested lists", deep())):
            path = Path(tmp) / f"{name.replace(' ', '_')}.yaml"
            path.write_text(text)
            tracemalloc.start()
            t0 = time.perf_counter()
            try:
                load_suite(path)
                outcome = "accepted (!)"
            except ConfigError as e:
                outcome = "refused: " + str(e).split(": ", 1)[1][:70]
            seconds = time.perf_counter() - t0
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
            print(f"{name:<18} {len(text):>7} bytes  {seconds:6.3f} s  peak {peak / 1e6:5.2f} MB  {outcome}")


if __name__ == "__main__":
    main()
