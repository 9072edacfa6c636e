"""Checkpoints a user can get wrong: each is one line naming the file and exit 2, and nothing is written.

Every case goes through ``segformer-bench convert SRC --out OUT`` (read a checkpoint, write another), so each
test also checks that OUT was not created.
"""

from __future__ import annotations

import json
import os
import pickle

import pytest
import torch

import segformer_bench as sb
from segformer_bench.models.checkpoints import export_huggingface

from ..helpers import cli_error


def convert_error(src, tmp_path, capsys) -> str:
    """`convert SRC` to a new file: the one-line error, after checking that no output appeared."""
    out = tmp_path / "converted.pt"
    message = cli_error(["convert", str(src), "--out", str(out), "--format", "segformer-bench"], capsys)
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".converted")]  # no temporary left either
    return message


@pytest.mark.parametrize("name", ["model.pt", "model.pth", "model.bin", "model.safetensors"])
def test_empty_file(tmp_path, capsys, name):
    (tmp_path / name).write_bytes(b"")
    message = convert_error(tmp_path / name, tmp_path, capsys)
    assert str(tmp_path / name) in message and "empty (0 bytes)" in message and "again" in message


def test_empty_pytorch_model_bin_in_a_huggingface_directory(tmp_path, capsys):
    (tmp_path / "hf").mkdir()
    (tmp_path / "hf" / "config.json").write_text('{"model_type": "segformer"}')
    (tmp_path / "hf" / "pytorch_model.bin").write_bytes(b"")
    message = convert_error(tmp_path / "hf", tmp_path, capsys)
    assert str(tmp_path / "hf" / "pytorch_model.bin") in message and "empty (0 bytes)" in message


@pytest.fixture(scope="module")
def hf_dir(tmp_path_factory):
    """A valid transformers directory of a B0 (config.json + model.safetensors) and its config."""
    path = tmp_path_factory.mktemp("hf") / "b0"
    export_huggingface(sb.build_model("b0", 19), path)
    return path, json.loads((path / "config.json").read_text())


def with_config(hf_dir, tmp_path, config) -> object:
    """A copy of the valid directory whose config.json holds `config` (a JSON value, or raw text)."""
    path, _ = hf_dir
    copy = tmp_path / "hf"
    copy.mkdir()
    (copy / "model.safetensors").write_bytes((path / "model.safetensors").read_bytes())
    (copy / "config.json").write_text(config if isinstance(config, str) else json.dumps(config))
    return copy


def test_the_valid_directory_converts(hf_dir, tmp_path, capsys):
    """The oracle for the cases below: the same tensors with the untouched config.json load."""
    from segformer_bench.cli import main

    directory = with_config(hf_dir, tmp_path, hf_dir[1])
    assert main(["convert", str(directory), "--out", str(tmp_path / "ok.pt"), "--format", "segformer-bench"]) == 0
    assert sb.load_model(tmp_path / "ok.pt").config.num_heads == (1, 2, 5, 8)


@pytest.mark.parametrize("config", [[1, 2, 3], "\"segformer\"", "42", "null"])
def test_config_json_that_is_not_an_object(hf_dir, tmp_path, capsys, config):
    directory = with_config(hf_dir, tmp_path, config)
    message = convert_error(directory, tmp_path, capsys)
    assert str(directory / "config.json") in message and "not an object" in message


@pytest.mark.parametrize(("key", "value", "shown"), [
    ("num_attention_heads", [0, 2, 5, 8], "num_attention_heads must be 4 positive integers"),
    ("num_attention_heads", [1, 2, 5], "num_attention_heads must be 4 positive integers"),
    ("num_attention_heads", 8, "num_attention_heads must be 4 positive integers"),
    ("num_attention_heads", [3, 2, 5, 8], "embed dim 32 is not divisible by 3 heads"),  # 32 channels: 3 heads
    ("strides", [4, 0, 2, 2], "strides must be 4 positive integers"),
    ("sr_ratios", [8, 4, -2, 1], "sr_ratios must be 4 positive integers"),
    ("patch_sizes", [7, "3", 3, 3], "patch_sizes must be 4 positive integers"),
    ("mlp_ratios", [4, 4, 4, True], "mlp_ratios must be 4 positive integers"),
    ("num_channels", 0, "num_channels must be a positive integer"),
    ("drop_path_rate", 1.5, "drop_path_rate must be a number in [0, 1)"),
])
def test_config_json_with_impossible_shapes(hf_dir, tmp_path, capsys, key, value, shown):
    directory = with_config(hf_dir, tmp_path, {**hf_dir[1], key: value})
    message = convert_error(directory, tmp_path, capsys)
    assert str(directory) in message and shown in message


@pytest.mark.parametrize("index", [
    [],
    {"weight_map": []},
    {"weight_map": {"a": "../outside.safetensors"}},
    {"weight_map": {"a": "/etc/passwd"}},
    {"weight_map": {"a": "missing.safetensors"}},
])
def test_bad_shard_index(hf_dir, tmp_path, capsys, index):
    directory = with_config(hf_dir, tmp_path, hf_dir[1])
    (directory / "model.safetensors.index.json").write_text(json.dumps(index))
    (tmp_path / "outside.safetensors").write_bytes((directory / "model.safetensors").read_bytes())
    message = convert_error(directory, tmp_path, capsys)
    assert str(directory / "model.safetensors.index.json") in message


@pytest.mark.parametrize(("contents", "shown"), [
    ("no model", "without its model state (no 'model' entry)"),
    ("model is a list", "without its model state ('model' is list, not a state dict)"),
    ("model is empty", "without its model state"),
    ("model holds a string", "not named tensors"),
    ("no config", "without its config (no 'config' entry)"),
])
def test_own_format_without_its_model(tmp_path, capsys, contents, shown):
    model = sb.build_model("b0", 19)
    saved = {"format": "segformer-bench", "version": 1, "config": model.config.to_dict(), "model": model.state_dict()}
    if contents == "no model":
        del saved["model"]
    elif contents == "model is a list":
        saved["model"] = [torch.zeros(1)]
    elif contents == "model is empty":
        saved["model"] = {}
    elif contents == "model holds a string":
        saved["model"] = {**saved["model"], "note": "hello"}
    else:
        del saved["config"]
    torch.save(saved, tmp_path / "own.pt")
    message = convert_error(tmp_path / "own.pt", tmp_path, capsys)
    assert str(tmp_path / "own.pt") in message and shown in message and "save_model" in message


def test_own_format_with_a_zero_head_config(tmp_path, capsys):
    model = sb.build_model("b0", 19)
    config = {**model.config.to_dict(), "num_heads": [1, 0, 5, 8]}
    torch.save({"format": "segformer-bench", "version": 1, "config": config, "model": model.state_dict()},
               tmp_path / "own.pt")
    message = convert_error(tmp_path / "own.pt", tmp_path, capsys)
    assert str(tmp_path / "own.pt") in message and "num_heads must hold positive integers, got 0" in message


class _System:
    """Unpickling this calls os.system: it would create the marker file."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("how", ["torch zip file", "legacy pickle, protocol 2", "plain pickle, protocol 4"])
def test_pickle_calling_os_system_is_refused_code_and_never_runs(tmp_path, capsys, how):
    marker = tmp_path / "ran"
    payload = {"state_dict": {"w": torch.zeros(2)}, "x": _System(marker)}
    path = tmp_path / "evil.pth"
    if how == "torch zip file":
        torch.save(payload, path)
    elif how == "legacy pickle, protocol 2":
        torch.save(payload, path, _use_new_zipfile_serialization=False)
    else:
        path.write_bytes(pickle.dumps(payload, protocol=4))  # STACK_GLOBAL: the name comes off the stack
    message = convert_error(path, tmp_path, capsys)
    assert not marker.exists()
    assert f"{os.system.__module__}.system" in message  # posix.system on Linux: what the pickle asks for
    assert "refused to load" in message and "nothing was run" in message and "corrupt" not in message


def test_damaged_file_is_reported_as_damaged_not_as_code(tmp_path, capsys):
    """The other side of the distinction: a torch file cut in half asks for no code; it is corrupt."""
    torch.save({"state_dict": {"w": torch.zeros(1000)}}, tmp_path / "whole.pth")
    data = (tmp_path / "whole.pth").read_bytes()
    (tmp_path / "cut.pth").write_bytes(data[: len(data) // 2])
    message = convert_error(tmp_path / "cut.pth", tmp_path, capsys)
    assert "not a readable PyTorch checkpoint" in message and "refused" not in message


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_saving_onto_a_full_disk_is_one_line_and_leaves_nothing(tmp_path, suffix):
    import os
    import subprocess

    from segformer_bench.errors import UserError
    from segformer_bench.models.checkpoints import save_model

    full = tmp_path / "full"
    full.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(full)],
                                           capture_output=True).returncode != 0:
        pytest.skip("needs root and mount for a small tmpfs (a real full disk)")
    try:
        with pytest.raises(UserError, match="cannot write") as err:
            save_model(sb.build_model("b0", 19), full / f"model{suffix}")  # 15 MB onto 256 kB
        assert "\n" not in str(err.value) and "No space left" in str(err.value)
        assert list(full.iterdir()) == []  # no half-written file, no temporary left
    finally:
        subprocess.run(["umount", str(full)], check=True)
