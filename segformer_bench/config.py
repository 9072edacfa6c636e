"""Typed configuration from flat YAML: dataclasses that reject unknown keys and wrong types.

``from_mapping(cls, data, source)`` builds a (frozen) dataclass from a dict read with ``yaml.safe_load``,
checking every field against its annotation (int, float, bool, str, Literal, tuples of those, optional
values, nested dicts of scalars) and raising one ``ConfigError`` that names the file, the field and what is
allowed. ``override(obj, ["key=value", ...])`` applies command-line overrides parsed as YAML scalars.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from .errors import UserError

T = TypeVar("T")


class ConfigError(UserError):
    """A configuration file or override that does not fit its schema."""


def _describe(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is typing.Literal:
        return " or ".join(repr(a) for a in typing.get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in typing.get_args(tp))
    if origin is tuple:
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return f"a list of {_describe(args[0])}"
        return f"a list of {len(args)} values ({', '.join(_describe(a) for a in args)})"
    if origin in (dict, Mapping):
        return "a mapping"
    if tp is type(None):
        return "null"
    return getattr(tp, "__name__", str(tp))


def _convert(value: Any, tp: Any, where: str) -> Any:
    """`value` checked (and lightly converted: lists to tuples, ints to floats) against annotation `tp`."""
    origin = typing.get_origin(tp)
    fail = ConfigError(f"{where}: expected {_describe(tp)}, got {value!r}")
    if tp is Any:
        return value
    if origin is typing.Literal:
        if value in typing.get_args(tp):
            return value
        raise fail
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(tp):
            try:
                return _convert(value, arg, where)
            except ConfigError:
                continue
        raise fail
    if tp is type(None):
        if value is None:
            return None
        raise fail
    if origin is tuple:
        args = typing.get_args(tp)
        if not isinstance(value, (list, tuple)):
            raise fail
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(v, args[0], f"{where}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise fail
        return tuple(_convert(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args, strict=True)))
    if origin in (dict, Mapping):
        if not isinstance(value, Mapping):
            raise fail
        key_t, val_t = typing.get_args(tp) or (str, Any)
        return {_convert(k, key_t, where): _convert(v, val_t, f"{where}.{k}") for k, v in value.items()}
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise fail
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise fail
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise fail
    if tp is str:
        if isinstance(value, str):
            return value
        raise fail
    if dataclasses.is_dataclass(tp):
        return from_mapping(tp, value, where)
    raise TypeError(f"config.py cannot check fields of type {tp!r}")  # a bug in a schema, not user input


def check_fields(data: Mapping, allowed: Iterable[str], source: str) -> None:
    """A ConfigError naming the keys of `data` that are not `allowed`, and what is."""
    allowed = list(allowed)
    unknown = [k for k in data if k not in allowed]
    if unknown:
        raise ConfigError(f"{source}: unknown field(s) {', '.join(map(str, unknown))}; "
                          f"allowed: {', '.join(allowed)}")


def from_mapping(cls: type[T], data: Any, source: str) -> T:
    """An instance of dataclass `cls` from `data`, every key and value checked (see module docstring)."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: expected a mapping of {cls.__name__} fields, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    check_fields(data, fields, source)
    missing = [n for n, f in fields.items() if n not in data and f.default is dataclasses.MISSING
               and f.default_factory is dataclasses.MISSING]
    if missing:
        raise ConfigError(f"{source}: missing required field(s) {', '.join(missing)}")
    values = {k: _convert(v, hints[k], f"{source}: field '{k}'") for k, v in data.items()}
    try:
        return cls(**values)
    except UserError as e:
        raise ConfigError(f"{source}: {e}") from None


def load_yaml(path: str | os.PathLike) -> Any:
    """``yaml.safe_load`` of a file, with missing files and syntax errors as one-line ConfigErrors."""
    import yaml

    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot be read ({e})") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{path}: not valid YAML{where} ({getattr(e, 'problem', None) or e})") from None


def to_mapping(obj: Any) -> dict:
    """A dataclass as plain dicts/lists (tuples become lists), for YAML/JSON records."""
    def plain(v: Any) -> Any:
        if dataclasses.is_dataclass(v):
            return {f.name: plain(getattr(v, f.name)) for f in dataclasses.fields(v)}
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        if isinstance(v, Mapping):
            return {k: plain(x) for k, x in v.items()}
        return v

    return plain(obj)


def parse_assignments(items: Sequence[str], source: str) -> dict[str, Any]:
    """``key=value`` strings as a mapping, each value parsed as YAML (``crop=[512,512]``, ``lr=6e-5``);
    a malformed item is a ConfigError naming `source` (the flag or file it came from)."""
    import yaml

    out: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{source}: {item!r} is not of the form key=value")
        try:
            out[key.strip()] = yaml.safe_load(text)
        except yaml.YAMLError:
            raise ConfigError(f"{source}: value of {key.strip()!r} is not valid YAML: {text!r}") from None
    return out


def override(obj: T, assignments: Sequence[str], source: str = "command line") -> T:
    """`obj` with ``field=value`` assignments applied (see ``parse_assignments``), checked like a file's fields."""
    if not assignments:
        return obj
    return from_mapping(type(obj), {**to_mapping(obj), **parse_assignments(assignments, source)}, source)
