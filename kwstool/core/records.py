"""Typed JSON records: dataclasses built from JSON objects with every field checked.

:func:`build` turns a JSON object into a dataclass instance, checking that each field is present
(fields declared with a ``None`` default may be absent) and has its annotated type: ``str``,
``int`` (not ``bool``), ``float`` (an int is accepted), ``bool``, ``list[X]``, ``dict[str, X]``,
``X | None``, ``Any`` and nested records. An ``extra`` field, when declared, keeps the keys the
record does not name. :func:`plain` is the way back. Errors are one-line
:class:`~kwstool.errors.KwsError` naming the file and the field. The artifact records are in
:mod:`kwstool.core.artifacts`.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from pathlib import Path
from typing import Any

from kwstool.errors import KwsError

JsonDict = dict[str, Any]


def _type_name(tp: Any) -> str:
    if tp is type(None):
        return "null"
    if dataclasses.is_dataclass(tp):
        return "object"
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if origin is list:
        return f"list of {_type_name(typing.get_args(tp)[0])}"
    if origin is dict:
        return "object"
    names = {str: "string", int: "integer", float: "number", bool: "true/false"}
    return names.get(tp, "any value")


def _value_name(value: Any) -> str:
    if value is None:
        return "null"
    names = {
        str: "a string",
        int: "an integer",
        float: "a number",
        bool: "true/false",
        list: "a list",
        dict: "an object",
    }
    return names.get(type(value), type(value).__name__)


def _matches(value: Any, tp: Any) -> bool:
    """Does a JSON value fit the annotation ``tp``? (nested records are checked by the caller)"""
    if tp is Any:
        return True
    if tp is type(None):
        return value is None
    if dataclasses.is_dataclass(tp):
        return isinstance(value, dict)
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, a) for a in typing.get_args(tp))
    if origin is list:
        (item,) = typing.get_args(tp)
        return isinstance(value, list) and all(_matches(v, item) for v in value)
    if origin is dict:
        _, item = typing.get_args(tp)
        return isinstance(value, dict) and all(_matches(v, item) for v in value.values())
    if tp is bool:
        return isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, tp)


def record_type(tp: Any) -> type[Any] | None:
    """The record class inside ``tp`` (``Rec`` or ``Rec | None``), if any."""
    for candidate in (tp, *typing.get_args(tp)):
        if isinstance(candidate, type) and dataclasses.is_dataclass(candidate):
            return candidate
    return None


def build(cls: type[Any], data: JsonDict, where: str, fix: str, prefix: str = "") -> Any:
    """An instance of the dataclass ``cls`` from ``data``, every field checked."""
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    declared = set()
    for f in dataclasses.fields(cls):
        if f.name == "extra":
            continue
        declared.add(f.name)
        name = prefix + f.name
        if f.name not in data:
            if f.default is None:
                values[f.name] = None
                continue
            raise KwsError(f"{where}: field '{name}' missing; {fix}")
        value, tp = data[f.name], hints[f.name]
        if not _matches(value, tp):
            raise KwsError(
                f"{where}: field '{name}' is {_value_name(value)}, expected {_type_name(tp)}; {fix}"
            )
        record = record_type(tp)
        if record is not None and isinstance(value, dict):
            value = build(record, value, where, fix, prefix=f"{name}.")
        values[f.name] = value
    if any(f.name == "extra" for f in dataclasses.fields(cls)):
        values["extra"] = {k: v for k, v in data.items() if k not in declared}
    return cls(**values)


def plain(value: Any) -> Any:
    """Records -> JSON objects (their ``extra`` keys merged back), recursively."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out: JsonDict = {}
        for f in dataclasses.fields(value):
            v = getattr(value, f.name)
            if f.name == "extra":
                out.update(v)
            elif not (v is None and f.default is None):
                out[f.name] = plain(v)
        return out
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    return value


def read_json(path: Path, hint: str) -> JsonDict:
    """A JSON object from ``path``; missing, unreadable or not an object: KwsError with ``hint``."""
    if not path.exists():
        raise KwsError(f"{path}: not found; {hint}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise KwsError(f"{path}: unreadable JSON ({exc}); {hint}") from None
    if not isinstance(data, dict):
        raise KwsError(f"{path}: holds {_value_name(data)}, not a JSON object; {hint}")
    return data
