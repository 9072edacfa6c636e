"""Reading YAML that a user wrote: hostile files (an alias bomb, deep nesting) cost nothing and are one line,
duplicate keys are an error, and numbers like 6e-5 are floats wherever a value is read (files and --set)."""

from __future__ import annotations

import dataclasses
import time
import tracemalloc

import pytest
import yaml

from segformer_bench.config import MAX_DEPTH, MAX_VALUES, ConfigError, from_mapping, override, parse_yaml, to_mapping
from segformer_bench.engine.train import TrainConfig, load_train_config

from .helpers import cli_error

SUITE_HEAD = """\
version: 1
name: tiny
models: [{name: B0, variant: b0, checkpoint: b0.pt}]
device: cpu
"""


def _bomb(indent: str, levels: int = 9) -> str:
    """The billion laughs: level i is a list of 9 aliases of level i - 1, so level 8 stands for 9^9 strings."""
    lines = [f"{indent}l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"{indent}l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


def _measured(fn):
    """(result, seconds, peak bytes allocated by Python) of fn()."""
    tracemalloc.start()
    start = time.perf_counter()
    try:
        result = fn()
    finally:
        seconds = time.perf_counter() - start
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return result, seconds, peak


def _depth(value) -> int:
    depth = 0
    while isinstance(value, list):
        depth, value = depth + 1, value[0] if value else None
    return depth


# --- case 1: an alias bomb ------------------------------------------------------------------------------


def test_an_alias_bomb_in_dataset_options_is_refused_at_once(tmp_path, capsys):
    path = tmp_path / "bomb.yaml"
    path.write_text(SUITE_HEAD + "dataset:\n  name: synthcity\n  options:\n" + _bomb("    "))
    assert len(path.read_bytes()) < 1000  # 387 420 489 strings once expanded
    message, seconds, peak = _measured(lambda: cli_error(["validate", str(path)], capsys))
    assert seconds < 2 and peak < 20e6, (seconds, peak)  # before: 36 s and 3.4 GB, expanding it into a message
    assert message.startswith(f"{path}, line ") and f"more than {MAX_VALUES} values" in message
    run_dir = tmp_path / "run"
    cli_error(["run", str(path), "--run-dir", str(run_dir)], capsys)
    assert not run_dir.exists()  # nothing written


def test_an_alias_bomb_in_a_training_config_is_refused_at_once(tmp_path, capsys):
    path = tmp_path / "train.yaml"
    path.write_text("iters: 10\ndataset_options:\n" + _bomb("  "))
    message, seconds, peak = _measured(
        lambda: cli_error(["train", "--run-dir", str(tmp_path / "run"), "--config", str(path)], capsys))
    assert seconds < 2 and peak < 20e6, (seconds, peak)
    assert f"more than {MAX_VALUES} values" in message and str(path) in message
    assert not (tmp_path / "run").exists()


def test_the_value_limit_counts_each_alias_as_a_copy():
    """Counted by hand: the mapping, key a, list a with its 9 strings (10), key b, list b, then 10 per alias."""
    def doc(aliases: int) -> str:
        return "a: &a [x, x, x, x, x, x, x, x, x]\nb: [" + ", ".join(["*a"] * aliases) + "]\n"

    fits = (MAX_VALUES - 14) // 10
    assert 14 + 10 * fits <= MAX_VALUES < 14 + 10 * (fits + 1)
    assert parse_yaml(doc(fits), "doc") == yaml.safe_load(doc(fits))
    with pytest.raises(ConfigError, match=rf"doc, line 2: the document holds more than {MAX_VALUES} values"):
        parse_yaml(doc(fits + 1), "doc")


def test_ordinary_anchors_and_merge_keys_read_as_pyyaml_reads_them():
    text = """\
base: &base {batch_size: 2, mode: slide, crop: [32, 32]}
a: {<<: *base, mode: whole}
b: [*base, *base]
c: {<<: [*base], crop: [64, 64]}
"""
    assert parse_yaml(text, "doc") == yaml.safe_load(text)
    assert parse_yaml(text, "doc")["a"] == {"batch_size": 2, "mode": "whole", "crop": [32, 32]}


def test_an_alias_inside_its_own_anchor_is_refused():
    # PyYAML builds a list that contains itself, which every check after it would walk forever
    looped = yaml.safe_load("a: &a [1, *a]")["a"]
    assert looped[1] is looped
    with pytest.raises(ConfigError, match=r"doc, line 1: alias \*a is inside its own anchor"):
        parse_yaml("a: &a [1, *a]", "doc")


def test_a_failing_check_shows_a_value_shortened():
    @dataclasses.dataclass(frozen=True)
    class C:
        size: tuple[int, int] = (1, 1)

    huge = list(range(10_000))
    with pytest.raises(ConfigError) as e:
        from_mapping(C, {"size": huge}, "doc")
    assert len(str(e.value)) < 200 and str(e.value).startswith("doc: field 'size': expected a list of 2 values")


# --- case 2: deep nesting ------------------------------------------------------------------------------------


def test_deeply_nested_lists_in_a_suite_are_one_line(tmp_path, capsys):
    path = tmp_path / "deep.yaml"
    path.write_text(SUITE_HEAD + "dataset: {name: synthcity, options: {size: " + "[" * 100_000 + "]" * 100_000
                    + "}}\n")
    message, seconds, _ = _measured(lambda: cli_error(["validate", str(path)], capsys))
    assert message == f"{path}, line 5: nested more than {MAX_DEPTH} levels deep; a config needs a few"
    assert seconds < 2


def test_deeply_nested_set_values_and_training_configs_are_one_line(tmp_path, capsys):
    run_dir = tmp_path / "run"
    message = cli_error(["train", "--run-dir", str(run_dir), "--set", "crop=" + "[" * 100_000], capsys)
    assert message.startswith("--set: value of 'crop', line 1: nested more than")
    path = tmp_path / "train.yaml"
    path.write_text("dataset_options:\n" + "".join(f"{'  ' * (i + 1)}k{i}:\n" for i in range(3000)) + "  " * 3001
                    + "1\n")  # block mappings, 3000 deep
    message = cli_error(["train", "--run-dir", str(run_dir), "--config", str(path)], capsys)
    assert message.startswith(f"{path}, line ") and f"nested more than {MAX_DEPTH} levels deep" in message
    assert not run_dir.exists()


def test_the_depth_limit_is_exact_and_counts_what_aliases_bring_in():
    deepest = parse_yaml("[" * MAX_DEPTH + "]" * MAX_DEPTH, "doc")
    assert _depth(deepest) == MAX_DEPTH
    config = override(TrainConfig(), ["model_options={a: " + "[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1) + "}"])
    assert _depth(to_mapping(config)["model_options"]["a"]) == MAX_DEPTH - 1  # to_mapping copes with the deepest
    with pytest.raises(ConfigError, match=f"nested more than {MAX_DEPTH} levels"):
        parse_yaml("[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1), "doc")
    # 60 levels under a, placed 50 levels down: 110 once expanded, though no part of the text nests past 60
    text = "a: &a " + "[" * 59 + "]" * 59 + "\nb: " + "[" * 49 + "*a" + "]" * 49 + "\n"
    with pytest.raises(ConfigError, match=r"doc, line 2: nested more than 100 levels deep \(counting what aliases"):
        parse_yaml(text, "doc")


# --- case 3: duplicate keys ------------------------------------------------------------------------------------


def test_a_duplicate_key_in_a_suite_names_the_key_and_both_lines(tmp_path, capsys):
    path = tmp_path / "dup.yaml"
    path.write_text(SUITE_HEAD + "seed: 0\ndataset: {name: synthcity}\nseed: 1\n")  # seed on lines 5 and 7
    assert yaml.safe_load(path.read_text())["seed"] == 1  # PyYAML keeps the last one, silently
    message = cli_error(["validate", str(path)], capsys)
    assert message == f"{path}, line 7: duplicate key 'seed' (first at line 5); keep one of them"


def test_a_duplicate_key_in_a_nested_mapping_or_a_training_config_is_refused(tmp_path, capsys):
    path = tmp_path / "train.yaml"
    path.write_text("iters: 10\ndataset_options: {size: [64, 64], length: 3, size: [32, 32]}\n")
    run_dir = tmp_path / "run"
    message = cli_error(["train", "--run-dir", str(run_dir), "--config", str(path)], capsys)
    assert message == f"{path}, line 2: duplicate key 'size' (first at line 2); keep one of them"
    assert not run_dir.exists()


# --- case 4: 6e-5 is a float ------------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["6e-5", "1e9", "6.0e5", "-1E+3", ".5e3", "6.0e-5", "1.5", "2.5e+3"])
def test_exponent_numbers_are_floats_as_in_yaml_1_2(text):
    assert parse_yaml(text, "doc") == float(text)


@pytest.mark.parametrize(("text", "value"), [("12", 12), ("0x1e3", 0x1E3), ("1_000", 1000), ("'6e-5'", "6e-5"),
                                             ("e5", "e5"), ("1e", "1e"), ("6e-5x", "6e-5x")])
def test_other_scalars_read_as_before(text, value):
    assert parse_yaml(text, "doc") == value == yaml.safe_load(text)


def test_lr_6e_5_is_a_float_from_set_and_from_a_file(tmp_path):
    assert override(TrainConfig(), ["lr=6e-5", "warmup_ratio=1e-6"]).lr == 6e-5
    path = tmp_path / "train.yaml"
    path.write_text("lr: 6e-5\nmin_lr: 1e-7\n")
    config = load_train_config(path, "synthcity")
    assert (config.lr, config.min_lr) == (6e-5, 1e-7)


def test_an_integer_field_still_refuses_a_float_and_a_quoted_string_stays_a_string(tmp_path, capsys):
    run_dir = tmp_path / "run"
    message = cli_error(["train", "--run-dir", str(run_dir), "--preset", "synthcity", "--set", "iters=1e3"], capsys)
    assert message == "--set: field 'iters': expected int, got 1000.0"
    assert not run_dir.exists()

    @dataclasses.dataclass(frozen=True)
    class C:
        name: str = ""

    assert override(C(), ["name='6e-5'"]).name == "6e-5"
    with pytest.raises(ConfigError, match="field 'name': expected str, got 6e-05"):
        override(C(), ["name=6e-5"])


# --- values PyYAML itself cannot build ----------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "message"), [("2024-13-45", "'2024-13-45' is not a valid date"),
                                                ("1" * 5000, "is not a valid integer")])
def test_scalars_that_python_refuses_are_one_line(tmp_path, capsys, value, message):
    with pytest.raises(ValueError):
        yaml.safe_load(value)  # a traceback before
    path = tmp_path / "bad.yaml"
    path.write_text(SUITE_HEAD + f"seed: {value}\n")
    error = cli_error(["validate", str(path)], capsys)
    assert error.startswith(f"{path}, line 5: ") and message in error and len(error) < 400
