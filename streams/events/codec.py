"""The one codec: JSON bytes <-> records, with validation. The only importer of orjson.

Records are frozen dataclasses (``records.py``). ``encode`` writes them with orjson
(dataclasses and enums natively); ``decode`` parses and validates against the record's
type hints, compiled once per class into a plain function. A value of the wrong type is
a ``ValidationError`` that names the field, the type found and the type expected, never
the value itself (it may be personal data).

Unknown fields are ignored (a newer producer may add optional fields within a schema
version); a schema version newer than this code understands is refused.
"""

from __future__ import annotations

import dataclasses
import enum
import types
import typing
from collections.abc import Callable
from typing import Any, TypeVar

import orjson

from .errors import InvalidInput, ValidationError

T = TypeVar("T")

_OPTS = orjson.OPT_NON_STR_KEYS


def dumps(obj: Any) -> bytes:
    """Serialize any JSON-able value, dataclass or enum to bytes.

    The result is copied into bytes of its own size: orjson's keeps the capacity of its
    write buffer (about 4 KiB however short the JSON), and the checker keeps many encoded
    values at once (staged writes, dict tables, Faust's buffers): a million 100-byte
    records held 4 GB instead of 100 MB. The copy costs about 0.3 µs."""
    return bytes(memoryview(orjson.dumps(obj, option=_OPTS)))


def loads(data: bytes | bytearray | memoryview | str) -> Any:
    """Parse JSON; malformed JSON is ``InvalidInput('malformed_json')``."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput("malformed_json", f"payload is not valid JSON ({exc.msg})") from None


def encode(record: Any) -> bytes:
    """Encode a record (a dataclass from ``records``) to JSON bytes."""
    return orjson.dumps(record, option=_OPTS)


def decode(cls: type[T], data: bytes | bytearray | memoryview | str) -> T:
    """Parse and validate JSON bytes into ``cls``."""
    return from_obj(cls, loads(data))


def from_obj(cls: type[T], obj: Any) -> T:
    """Validate an already parsed JSON value into ``cls``."""
    return typing.cast(T, _decoder(cls)(obj, cls.__name__))


def to_obj(record: Any) -> Any:
    """A record as plain JSON values (dicts, lists, str, int...)."""
    return orjson.loads(encode(record))


# -- compiled decoders -------------------------------------------------------------------

_Decoder = Callable[[Any, str], Any]
_SCALARS: dict[Any, str] = {str: "string", int: "integer", float: "number", bool: "boolean"}
_cache: dict[Any, _Decoder] = {}


def _typename(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _split(path: str) -> tuple[str, str]:
    record, _, field = path.partition(".")
    return record, field or "(value)"


def _fail(path: str, value: Any, expected: str) -> typing.NoReturn:
    record, field = _split(path)
    raise ValidationError(record, field, _typename(value), expected)


def _decoder(tp: Any) -> _Decoder:
    found = _cache.get(tp)
    if found is None:
        found = _compile(tp)
        _cache[tp] = found
    return found


def _compile(tp: Any) -> _Decoder:
    origin = typing.get_origin(tp)
    if tp is str:

        def dec_str(v: Any, p: str) -> Any:
            if type(v) is not str:
                _fail(p, v, "string")
            return v

        return dec_str
    if tp is bool:

        def dec_bool(v: Any, p: str) -> Any:
            if type(v) is not bool:
                _fail(p, v, "boolean")
            return v

        return dec_bool
    if tp is int:

        def dec_int(v: Any, p: str) -> Any:
            if type(v) is not int:
                _fail(p, v, "integer")
            return v

        return dec_int
    if tp is float:

        def dec_float(v: Any, p: str) -> Any:
            if type(v) is float:
                return v
            if type(v) is int:
                return float(v)
            _fail(p, v, "number")

        return dec_float
    if tp is Any or tp is object:
        return lambda v, p: v
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        members = {m.value: m for m in tp}
        expected = "one of " + ", ".join(repr(k) for k in members)

        def dec_enum(v: Any, p: str) -> Any:
            try:
                return members[v]
            except (KeyError, TypeError):
                _fail(p, v, expected)

        return dec_enum
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) > 1 and all(a in _SCALARS for a in args):
            allowed = tuple(args)
            expected = " or ".join(_SCALARS[a] for a in args)
            nullable = type(None) in typing.get_args(tp)

            def dec_scalar(v: Any, p: str) -> Any:
                if type(v) in allowed or (v is None and nullable):
                    return v
                _fail(p, v, expected)

            return dec_scalar
        if len(args) != 1:
            raise TypeError(f"unsupported union {tp!r}")
        inner = _decoder(args[0])

        def dec_opt(v: Any, p: str) -> Any:
            return None if v is None else inner(v, p)

        return dec_opt
    if origin in (list, tuple):
        (item_tp, *_) = typing.get_args(tp)
        item = _decoder(item_tp)
        as_tuple = origin is tuple

        def dec_list(v: Any, p: str) -> Any:
            if type(v) is not list:
                _fail(p, v, "array")
            try:
                out = [item(x, p) for x in v]
            except ValidationError:
                # decoded again with each item's path, for the message: raises the same
                out = [item(x, f"{p}[{i}]") for i, x in enumerate(v)]
            return tuple(out) if as_tuple else out

        return dec_list
    if origin is dict:
        _, val_tp = typing.get_args(tp)
        val = _decoder(val_tp)

        def dec_dict(v: Any, p: str) -> Any:
            if type(v) is not dict:
                _fail(p, v, "object")
            try:
                return {k: val(x, p) for k, x in v.items()}
            except ValidationError:
                # decoded again with each value's path, for the message: raises the same
                return {k: val(x, f"{p}.{k}") for k, x in v.items()}

        return dec_dict
    if dataclasses.is_dataclass(tp):
        return _compile_record(tp)
    raise TypeError(f"codec cannot decode type {tp!r}")


#: Field types a record's decoder checks inline (no call, no path built): the types a
#: valid value may have as it is.
_INLINE: dict[Any, tuple[type, ...]] = {
    str: (str,),
    int: (int,),
    bool: (bool,),
    str | None: (str, type(None)),
    int | None: (int, type(None)),
    bool | None: (bool, type(None)),
}
_ABSENT: Any = object()


def _field_slow(fname: str, dec: _Decoder, f: dataclasses.Field[Any]) -> Callable[[Any, str], Any]:
    """What a record's decoder does with a value of field ``fname`` the inline check did
    not accept: the default when absent, else the full decoder (converts, or raises with
    the field's path)."""
    required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING

    def slow(x: Any, p: str) -> Any:
        if x is _ABSENT:
            if required:
                record, field = _split(f"{p}.{fname}")
                raise ValidationError(record, field, "nothing (field missing)", "a value")
            if f.default_factory is not dataclasses.MISSING:
                return f.default_factory()
            return f.default
        return dec(x, f"{p}.{fname}")

    return slow


def _compile_record(cls: Any) -> _Decoder:
    """A decoder for the dataclass ``cls``, generated as straight-line code (as
    ``dataclasses`` generates ``__init__``): each field read once, its type checked inline
    when it is a scalar or an enum, the record built with one call. Anything unusual (a
    field absent, a nested value, a wrong type) goes through ``_field_slow``."""
    hints = typing.get_type_hints(cls)
    fields = [f for f in dataclasses.fields(cls) if f.init]
    supported = getattr(cls, "SCHEMA_VERSION", None)
    name = cls.__name__
    env: dict[str, Any] = {
        "cls": cls,
        "_fail": _fail,
        "_check_version": _check_version,
        "_ABSENT": _ABSENT,
        "supported": supported,
        "expected": f"object ({name})",
    }
    head = [
        "    if type(v) is not dict:",
        "        _fail(p, v, expected)",
    ]
    if supported is not None:
        head.append("    _check_version(v, p, supported)")
    # Two functions from one body: ``dec_full`` reads each field with ``get`` (absent: its
    # default, through ``slow``); ``dec_record`` reads every field by subscript first (no
    # method call per field) and hands a record lacking one to ``dec_full``.
    full = ["def dec_full(v, p):", *head, "    get = v.get"]
    fast = ["def dec_record(v, p):", *head, "    try:"]
    fast += [f"        x{i} = v[{f.name!r}]" for i, f in enumerate(fields)] or ["        pass"]
    fast += ["    except KeyError:", "        return dec_full(v, p)"]
    lines: list[str] = []
    args = []
    for i, f in enumerate(fields):
        tp = hints[f.name]
        env[f"slow{i}"] = _field_slow(f.name, _decoder(tp), f)
        lines.append(f"    x = <read {i}>")
        inline = _INLINE.get(tp)
        if inline is not None:
            env[f"types{i}"] = inline
            check = (
                f"type(x) is not {inline[0].__name__}"
                if len(inline) == 1
                else (f"type(x) not in types{i}")
            )
            lines += [f"    if {check}:", f"        x = slow{i}(x, p)"]
        elif tp == list[str]:
            # taken as it is when every item is a string: orjson made it for us
            env["all_str"] = _all_str
            lines += [
                "    if type(x) is not list or (x and not all_str(x)):",
                f"        x = slow{i}(x, p)",
            ]
        elif _enum_list(tp) is not None:
            env[f"members{i}"] = {m.value: m for m in _enum_list(tp)}  # type: ignore[union-attr]
            lines += [
                "    if type(x) is not list:",
                f"        x = slow{i}(x, p)",
                "    elif x:",
                f"        y = [members{i}.get(e) if type(e) is str else None for e in x]",
                f"        x = slow{i}(x, p) if None in y else y",
            ]
        elif _optional_enum(tp) is not None:
            env[f"members{i}"] = {m.value: m for m in _optional_enum(tp)}  # type: ignore[union-attr]
            lines += [
                "    if x is not None:",
                f"        y = members{i}.get(x) if type(x) is str else None",
                f"        x = slow{i}(x, p) if y is None else y",
            ]
        elif _optional_record(tp) is not None:
            # decoded with this record's path; a failure is decoded again with its own
            # path (``slow``), for the message: raises the same error
            env[f"rec{i}"] = _decoder(_optional_record(tp))
            env["ValidationError"] = ValidationError
            lines += [
                "    if x is not None:",
                "        try:",
                f"            x = rec{i}(x, p)",
                "        except ValidationError:",
                f"            x = slow{i}(x, p)",
            ]
        elif typing.get_origin(tp) in (list, dict):
            # an empty one (the usual case) is taken as it is: orjson made it for us
            empty = "list" if typing.get_origin(tp) is list else "dict"
            lines += [f"    if type(x) is not {empty} or x:", f"        x = slow{i}(x, p)"]
        elif isinstance(tp, type) and issubclass(tp, enum.Enum):
            env[f"members{i}"] = {m.value: m for m in tp}
            lines += [
                f"    y = members{i}.get(x) if type(x) is str else None",
                f"    x = slow{i}(x, p) if y is None else y",
            ]
        else:
            lines.append(f"    x = slow{i}(x, p)")
        lines.append(f"    a{i} = x")
        args.append(f"{f.name}=a{i}")
    if _fills_slots(cls, fields):
        # set each slot through its descriptor: what the frozen ``__init__`` does through
        # ``object.__setattr__`` field by field, at about half the cost
        lines.append("    o = new(cls)")
        for i, f in enumerate(fields):
            env[f"set{i}"] = cls.__dict__[f.name].__set__
            lines.append(f"    set{i}(o, a{i})")
        lines.append("    return o")
        env["new"] = object.__new__
    else:
        lines.append(f"    return cls({', '.join(args)})")
    full_body = [
        f"    x = get({fields[int(m)].name!r}, _ABSENT)" if (m := _read_index(line)) else line
        for line in lines
    ]
    fast_body = [f"    x = x{m}" if (m := _read_index(line)) else line for line in lines]
    source = "\n".join([*full, *full_body, *fast, *fast_body])
    exec(source, env)  # our own code, generated from the type hints
    dec: _Decoder = env["dec_record"]
    return dec


def _read_index(line: str) -> str:
    """The field index of a generated ``x = <read i>`` line ('' for any other line)."""
    if line.startswith("    x = <read "):
        return line[len("    x = <read ") : -1]
    return ""


def _all_str(items: list[Any]) -> bool:
    for item in items:  # noqa: SIM110 - a plain loop: no generator made per record
        if type(item) is not str:
            return False
    return True


def _enum_list(tp: Any) -> type[enum.Enum] | None:
    """``E`` when ``tp`` is ``list[E]`` of an enum ``E``."""
    if typing.get_origin(tp) is not list:
        return None
    (item,) = typing.get_args(tp)
    return item if isinstance(item, type) and issubclass(item, enum.Enum) else None


def _optional_enum(tp: Any) -> type[enum.Enum] | None:
    """``E`` when ``tp`` is ``E | None`` of an enum ``E``."""
    if typing.get_origin(tp) not in (typing.Union, types.UnionType):
        return None
    args = typing.get_args(tp)
    rest = [a for a in args if a is not type(None)]
    if len(args) != 2 or len(rest) != 1:
        return None
    (item,) = rest
    return item if isinstance(item, type) and issubclass(item, enum.Enum) else None


def _optional_record(tp: Any) -> Any:
    """``R`` when ``tp`` is ``R | None`` of a dataclass ``R``."""
    if typing.get_origin(tp) not in (typing.Union, types.UnionType):
        return None
    args = typing.get_args(tp)
    rest = [a for a in args if a is not type(None)]
    if len(args) != 2 or len(rest) != 1 or not dataclasses.is_dataclass(rest[0]):
        return None
    return rest[0]


def _fills_slots(cls: Any, fields: list[dataclasses.Field[Any]]) -> bool:
    """Whether a record of ``cls`` is made by setting its slots: a dataclass with
    ``__slots__`` whose ``__init__`` only sets its fields (every field an argument, no
    ``__post_init__``) and whose records have no ``__dict__``."""
    return (
        "__slots__" in cls.__dict__
        and not hasattr(cls, "__post_init__")
        and len(fields) == len(dataclasses.fields(cls))
        and all(f.name in cls.__dict__ for f in fields)
        and cls.__dictoffset__ == 0
    )


def _check_version(v: dict[str, Any], p: str, supported: int) -> None:
    ver = v.get("v", supported)
    if type(ver) is not int or ver > supported or ver < 1:
        record, _ = _split(p)
        raise ValidationError(
            record,
            "v",
            f"schema version {ver!r}" if type(ver) is int else _typename(ver),
            f"schema version 1..{supported} (upgrade consentinel to read newer records)",
        )
