"""Typed settings: how a frozen dataclass declares its fields, checks values and reads them from text or JSON.

A field is declared with ``setting(default, help, low=..., ...)``. Its type hint says what it holds
(``int``, ``float``, ``bool``, ``str``, a ``Literal`` of choices, unions of these with ``None``, a nested
settings class); its metadata says the bounds and the help text. ``check(obj)`` enforces both, so a
class that calls it from ``__post_init__`` refuses bad values however it is built: by the CLI (which is
generated from the same hints, see ``cli``), by the Python API, or from a saved JSON file.

No torch import here: the CLI reads these classes before anything heavy.
"""

from __future__ import annotations

import dataclasses
import math
import types
from collections.abc import Callable
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

from .errors import UserError

REQUIRED: Any = dataclasses.MISSING


class ConfigError(UserError, ValueError):
    """A setting is not valid; the message names the flag and what it accepts."""


def setting(
    default: Any,
    help: str,
    *,
    low: float | None = None,
    high: float | None = None,
    above: float | None = None,
    below: float | None = None,
    choices: tuple[Any, ...] | None = None,
    flag: str | None = None,
    short: str | None = None,
    positional: bool = False,
    parse: Callable[[str], Any] | None = None,
    metavar: str | None = None,
) -> Any:
    """A dataclass field with its help text and bounds (``low``/``high`` inclusive, ``above``/``below`` strict).

    ``flag`` overrides the CLI name (default ``--field-name``), ``short`` adds one like ``-n``, ``positional``
    makes it a positional CLI argument, ``parse`` turns the CLI's text (or a string given to the API) into
    the value. ``REQUIRED`` as the default makes the field required.
    """
    metadata = {
        "help": help,
        "low": low,
        "high": high,
        "above": above,
        "below": below,
        "choices": choices,
        "flag": flag,
        "short": short,
        "positional": positional,
        "parse": parse,
        "metavar": metavar,
    }
    if isinstance(default, (list, dict, set)):
        raise TypeError("settings are immutable: use a tuple")
    if default is REQUIRED:
        return dataclasses.field(metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def flag_name(f: dataclasses.Field) -> str:
    """The CLI spelling of a field, used in every message about it (``--lr-d``)."""
    if f.metadata.get("positional"):
        return f.name.upper()
    return f.metadata.get("flag") or "--" + f.name.replace("_", "-")


def hints(cls: type) -> dict[str, Any]:
    """The resolved type hints of a settings class (cached per class by typing)."""
    return get_type_hints(cls, include_extras=False)


def is_union(hint: Any) -> bool:
    return get_origin(hint) in (Union, types.UnionType)


def describe(hint: Any) -> str:
    """What a type hint accepts, in words, for messages."""
    if is_union(hint):
        return " or ".join(describe(a) for a in get_args(hint))
    if get_origin(hint) is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(hint))
    return {
        int: "a whole number",
        float: "a number",
        bool: "true or false",
        str: "text",
        type(None): "unset (None)",
    }.get(hint, getattr(hint, "__name__", str(hint)))


def coerce(name: str, hint: Any, value: Any) -> Any:
    """``value`` checked against the type hint (ints widen to floats); ConfigError when it does not fit."""
    if is_union(hint):
        args = get_args(hint)
        if value is None and type(None) in args:
            return None
        for arm in args:
            if arm is type(None):
                continue
            try:
                return coerce(name, arm, value)
            except ConfigError:
                continue
        raise ConfigError(f"{name}: expected {describe(hint)}, got {value!r}")
    if get_origin(hint) is Literal:
        if isinstance(value, str) and value in get_args(hint):
            return value
        raise ConfigError(f"{name} must be {describe(hint)}, got {value!r}")
    if get_origin(hint) is tuple:  # tuple[X, ...]
        if isinstance(value, (tuple, list)):
            return tuple(coerce(name, get_args(hint)[0], v) for v in value)
        raise ConfigError(f"{name}: expected a list, got {value!r}")
    if hint is bool:
        if isinstance(value, bool):
            return value
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if not math.isfinite(value):
                raise ConfigError(f"{name} must be a finite number, got {value!r}")
            return float(value)
    elif hint is str:
        if isinstance(value, str):
            return value
    elif isinstance(hint, type) and dataclasses.is_dataclass(hint):
        if isinstance(value, hint):
            return value
        if isinstance(value, dict):
            return from_dict(hint, value)
    raise ConfigError(f"{name}: expected {describe(hint)}, got {value!r}")


def _number(x: float) -> str:
    """A bound as people write it: 4294967295, 0.1, 1e-06."""
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e15 else f"{x:g}"


def _check_bounds(name: str, meta: Any, value: Any) -> None:
    if value is None:
        return
    choices = meta.get("choices")
    if choices is not None and value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(str(c) for c in choices)}, got {value!r}")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return
    if meta.get("low") is not None and value < meta["low"]:
        raise ConfigError(f"{name} must be at least {_number(meta['low'])}, got {value!r}")
    if meta.get("high") is not None and value > meta["high"]:
        raise ConfigError(f"{name} must be at most {_number(meta['high'])}, got {value!r}")
    if meta.get("above") is not None and not value > meta["above"]:
        raise ConfigError(f"{name} must be above {_number(meta['above'])}, got {value!r}")
    if meta.get("below") is not None and not value < meta["below"]:
        raise ConfigError(f"{name} must be below {_number(meta['below'])}, got {value!r}")


def check(obj: Any) -> None:
    """Check (and normalise in place) every field of a frozen settings object: type, then bounds.

    A string given for a field with a ``parse`` function (e.g. ``"30m"`` for a duration) is parsed first.
    """
    types_ = hints(type(obj))
    for f in dataclasses.fields(obj):
        name = flag_name(f)
        value = getattr(obj, f.name)
        parse = f.metadata.get("parse")
        if parse is not None and isinstance(value, str):
            value = parse_text(name, parse, value)
        value = coerce(name, types_[f.name], value)
        _check_bounds(name, f.metadata, value)
        object.__setattr__(obj, f.name, value)


def parse_text(name: str, parse: Callable[[str], Any], text: str) -> Any:
    """Run a field's parser, turning its ValueError into a ConfigError that names the flag."""
    try:
        return parse(text)
    except ValueError as e:
        raise ConfigError(f"{name}: {e}") from None


def from_text(hint: Any, text: str) -> Any:
    """The CLI's conversion of a flag's text by the field's type (checks come later, from ``check``)."""
    if is_union(hint):
        arms = [a for a in get_args(hint) if a is not type(None)]
        for arm in arms:
            try:
                return from_text(arm, text)
            except ValueError:
                continue
        raise ValueError(f"expected {' or '.join(describe(a) for a in arms)}, got {text!r}")
    if get_origin(hint) is Literal:
        if text in get_args(hint):
            return text
        raise ValueError(f"expected {describe(hint)}, got {text!r}")
    if hint is int:
        try:
            return int(text)
        except ValueError:
            raise ValueError(f"expected a whole number, got {text!r}") from None
    if hint is float:
        try:
            return float(text)
        except ValueError:
            raise ValueError(f"expected a number, got {text!r}") from None
    if hint is str:
        return text
    raise TypeError(f"no text form for {hint}")


def with_overrides(config: Any, overrides: dict[str, Any]) -> Any:
    """A copy of a (nested) frozen settings object with dotted-path values replaced, checked again."""
    nested: dict[str, dict[str, Any]] = {}
    direct: dict[str, Any] = {}
    for key, value in overrides.items():
        head, _, rest = key.partition(".")
        if rest:
            nested.setdefault(head, {})[rest] = value
        else:
            direct[key] = value
    names = {f.name for f in dataclasses.fields(config)}
    unknown = (set(direct) | set(nested)) - names
    if unknown:
        raise ConfigError(f"unknown setting(s): {', '.join(sorted(unknown))}")
    for head, sub in nested.items():
        direct[head] = with_overrides(getattr(config, head), sub)
    return dataclasses.replace(config, **direct)


def to_dict(config: Any) -> dict[str, Any]:
    """A JSON-ready dict of a settings object (nested ones as dicts)."""
    return dataclasses.asdict(config)


def from_dict(cls: type, values: Any, where: str = "saved settings") -> Any:
    """Rebuild a (nested) settings object from ``to_dict`` output, refusing unknown keys and bad values."""
    if not isinstance(values, dict):
        raise ConfigError(f"{where}: expected an object of settings, got {type(values).__name__}")
    types_ = hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(values) - set(fields)
    if unknown:
        raise ConfigError(f"{where}: unknown setting(s) {', '.join(sorted(map(str, unknown)))}")
    kwargs = {}
    for key, value in values.items():
        hint = types_[key]
        if isinstance(hint, type) and dataclasses.is_dataclass(hint) and isinstance(value, dict):
            value = from_dict(hint, value, where)
        elif isinstance(value, list):
            value = tuple(value)
        kwargs[key] = value
    try:
        return cls(**kwargs)
    except TypeError as e:  # a required field is missing
        raise ConfigError(f"{where}: {e}") from None
