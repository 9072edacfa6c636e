"""Typed configuration from flat YAML: dataclasses that reject unknown keys and wrong types.

``from_mapping(cls, data, source)`` builds a (frozen) dataclass from a dict read with ``yaml.safe_load``,
checking every field against its annotation (int, float, bool, str, Literal, tuples of those, optional
values, nested dicts of scalars) and raising one ``ConfigError`` that names the file, the field and what is
allowed. ``override(obj, ["key=value", ...])`` applies command-line overrides parsed as YAML scalars.

Files and ``key=value`` values are read by one safe loader (``parse_yaml``): ``yaml.SafeLoader`` (YAML's own
tags only, no objects) that also refuses what costs more than any config needs (more than ``MAX_VALUES``
values counting every alias as a full copy, nesting deeper than ``MAX_DEPTH``), refuses duplicate keys
(PyYAML would keep the last one silently), and reads ``6e-5`` and ``1e9`` as floats, as YAML 1.2 does (YAML
1.1 wants a dot and a signed exponent: ``6.0e-5``). Error messages show values shortened (``short``), never
whole.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import re
import reprlib
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from .errors import UserError

T = TypeVar("T")


class ConfigError(UserError):
    """A configuration file or override that does not fit its schema."""


# What a config file may cost. A suite or training config holds a few hundred values a few levels deep; these
# bounds are far above that and far below what an alias bomb expands to (9 nested anchors of 9 aliases each:
# 387 million values from a 300-byte file).
MAX_VALUES = 100_000  # scalars, lists and mappings (and mapping keys), counting each alias as a full copy
MAX_DEPTH = 100  # nesting of lists and mappings, counting what aliases bring in

_SHORT = reprlib.Repr()  # cut long strings, long lists and deep structures for error messages
_SHORT.maxlevel, _SHORT.maxstring, _SHORT.maxother, _SHORT.maxlong = 3, 60, 60, 40
_SHORT.maxlist = _SHORT.maxtuple = _SHORT.maxset = _SHORT.maxfrozenset = _SHORT.maxdict = 6


def short(value: Any) -> str:
    """``repr(value)`` cut to a readable length: for error messages, which must never hold a whole value."""
    return _SHORT.repr(value)


def _name(key: Any) -> str:
    """A mapping key as shown in a message: itself, cut when long."""
    text = key if isinstance(key, str) else short(key)
    return text if len(text) <= 60 else text[:57] + "..."


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

    def fail() -> ConfigError:  # built only when raised: describing a value costs, describing a big one a lot
        return ConfigError(f"{where}: expected {_describe(tp)}, got {short(value)}")

    if tp is Any:
        return value
    if origin is typing.Literal:
        if value in typing.get_args(tp):
            return value
        raise fail()
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(tp):
            try:
                return _convert(value, arg, where)
            except ConfigError:
                continue
        raise fail()
    if tp is type(None):
        if value is None:
            return None
        raise fail()
    if origin is tuple:
        args = typing.get_args(tp)
        if not isinstance(value, (list, tuple)):
            raise fail()
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(v, args[0], f"{where}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise fail()
        return tuple(_convert(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args, strict=True)))
    if origin in (dict, Mapping):
        if not isinstance(value, Mapping):
            raise fail()
        key_t, val_t = typing.get_args(tp) or (str, Any)
        return {_convert(k, key_t, where): _convert(v, val_t, f"{where}.{_name(k)}") for k, v in value.items()}
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise fail()
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise fail()
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise fail()
    if tp is str:
        if isinstance(value, str):
            return value
        raise fail()
    if dataclasses.is_dataclass(tp):
        return from_mapping(tp, value, where)
    raise TypeError(f"config.py cannot check fields of type {tp!r}")  # a bug in a schema, not user input


def check_fields(data: Mapping, allowed: Iterable[str], source: str) -> None:
    """A ConfigError naming the keys of `data` that are not `allowed`, and what is."""
    allowed = list(allowed)
    unknown = [k for k in data if k not in allowed]
    if unknown:
        more = f" and {len(unknown) - 10} more" if len(unknown) > 10 else ""
        raise ConfigError(f"{source}: unknown field(s) {', '.join(map(_name, unknown[:10]))}{more}; "
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


@functools.cache
def _loader() -> type:
    """The loader class of ``parse_yaml`` (built on first use: importing PyYAML is not free)."""
    import yaml

    class Refused(yaml.MarkedYAMLError):
        """Valid YAML that a config must not be: too big, too deep, a key twice."""

        def __init__(self, problem: str, mark: yaml.Mark) -> None:
            super().__init__(problem=problem, problem_mark=mark)

    class Loader(yaml.SafeLoader):
        """``yaml.SafeLoader`` that counts while composing, before anything is expanded: every value (an alias
        counts as much as its anchor's whole content) and the depth it reaches; and that refuses duplicate keys.
        It adds no tag and builds no object: what it returns is what ``yaml.safe_load`` returns, or less."""

        def compose_document(self) -> yaml.Node:
            self.values, self.depth, self.reach = 0, 0, 0
            self.anchored: dict[str, tuple[int, int]] = {}  # anchor → (values, height) of its finished node
            return super().compose_document()

        def grow(self, values: int, depth: int, mark: yaml.Mark) -> None:
            self.values += values
            self.reach = max(self.reach, depth)
            if self.values > MAX_VALUES:
                raise Refused(f"the document holds more than {MAX_VALUES} values (each alias counts as a copy "
                              "of its anchor); write the values out instead of nesting anchors", mark)
            if depth > MAX_DEPTH:
                raise Refused(f"nested more than {MAX_DEPTH} levels deep (counting what aliases bring in); "
                              "a config needs a few", mark)

        def fetch_flow_collection_start(self, TokenClass: type) -> None:
            # the scanner reads a whole flow collection ([[[[...) before the composer sees its first node
            if self.flow_level >= MAX_DEPTH:
                raise Refused(f"nested more than {MAX_DEPTH} levels deep; a config needs a few", self.get_mark())
            super().fetch_flow_collection_start(TokenClass)

        def compose_node(self, parent: yaml.Node | None, index: object) -> yaml.Node:
            event = self.peek_event()
            if isinstance(event, yaml.AliasEvent):
                if event.anchor in self.anchors:  # else PyYAML says "found undefined alias"
                    if event.anchor not in self.anchored:
                        raise Refused(f"alias *{_name(event.anchor)} is inside its own anchor: a value that "
                                      "contains itself", event.start_mark)
                    values, height = self.anchored[event.anchor]
                    self.grow(values, self.depth + height, event.start_mark)
                return super().compose_node(parent, index)
            values, reach = self.values, self.reach
            self.depth += 1
            self.reach = self.depth
            self.grow(1, self.depth, event.start_mark)
            node = super().compose_node(parent, index)
            if event.anchor is not None:
                self.anchored[event.anchor] = (self.values - values, self.reach - self.depth + 1)
            self.depth -= 1
            self.reach = max(self.reach, reach)
            if isinstance(node, yaml.MappingNode):
                seen: dict[tuple[str, str], yaml.Node] = {}
                for key, _ in node.value:
                    if not isinstance(key, yaml.ScalarNode) or key.tag == "tag:yaml.org,2002:merge":
                        continue  # `<<: *base` merges; keys written out after it override the merged ones
                    first = seen.setdefault((key.tag, key.value), key)
                    if first is not key:
                        raise Refused(f"duplicate key {_name(key.value)!r} (first at line {first.start_mark.line + 1}"
                                      "); keep one of them", key.start_mark)
            return node

    # YAML 1.2 floats: a number with an exponent needs neither a dot nor a signed exponent (6e-5, 1e9, 1.5E3)
    Loader.add_implicit_resolver(
        "tag:yaml.org,2002:float",
        re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9][0-9_]*)[eE][-+]?[0-9]+$"), list("-+0123456789."))

    def checked(construct: Any, kind: str) -> Any:
        """A scalar constructor whose ValueError (an integer of 5000 digits, the date 2024-13-45) is a YAML error
        at the value, not a traceback."""
        def construct_checked(loader: Loader, node: yaml.ScalarNode) -> Any:
            try:
                return construct(loader, node)
            except (ValueError, OverflowError) as e:
                raise Refused(f"{short(node.value)} is not a valid {kind} ({e})", node.start_mark) from None
        return construct_checked

    for tag, kind in (("int", "integer"), ("float", "number"), ("timestamp", "date")):
        tag = f"tag:yaml.org,2002:{tag}"
        Loader.add_constructor(tag, checked(yaml.SafeLoader.yaml_constructors[tag], kind))
    Loader.Refused = Refused
    return Loader


def parse_yaml(text: str, source: str) -> Any:
    """`text` read as YAML by the safe loader described in the module docstring; anything it refuses, and any
    syntax error, is a one-line ConfigError naming `source` and the line."""
    import yaml

    loader = _loader()
    try:
        return yaml.load(text, Loader=loader)  # a yaml.SafeLoader: YAML's own tags only, no objects
    except loader.Refused as e:
        raise ConfigError(f"{source}, line {e.problem_mark.line + 1}: {e.problem}") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = str(getattr(e, "problem", None) or e)
        problem = problem if len(problem) <= 200 else problem[:197] + "..."
        raise ConfigError(f"{source}: not valid YAML{where} ({problem})") from None


def load_yaml(path: str | os.PathLike) -> Any:
    """A YAML file read by ``parse_yaml``, a missing or unreadable file as a one-line ConfigError."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot be read ({e})") from None
    return parse_yaml(text, str(path))


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
    """``key=value`` strings as a mapping, each value parsed as YAML by ``parse_yaml`` (``crop=[512,512]``,
    ``lr=6e-5``); a malformed item is a ConfigError naming `source` (the flag or file it came from)."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{source}: {short(item)} is not of the form key=value")
        out[key.strip()] = parse_yaml(text, f"{source}: value of {short(key.strip())}")
    return out


def override(obj: T, assignments: Sequence[str], source: str = "command line") -> T:
    """`obj` with ``field=value`` assignments applied (see ``parse_assignments``), checked like a file's fields."""
    if not assignments:
        return obj
    return from_mapping(type(obj), {**to_mapping(obj), **parse_assignments(assignments, source)}, source)
