"""Command-line options derived from settings dataclasses: each option is defined once, by its
field (name, type, default, docstring).

:func:`add_options` turns fields into argparse options and :func:`from_args` builds the
dataclass back from the parsed namespace::

    add_options(parser, DiscoverConfig, required=("base", "dataset"))
    cfg = from_args(DiscoverConfig, args)

The rules, the same for every subcommand:

- ``out_dir`` is ``--out`` and ``num_threads`` is ``--threads``; every other field ``foo_bar``
  is ``--foo-bar`` (nested settings: ``--PREFIX.foo-bar``);
- a bool field is a switch: ``--foo`` when it defaults to False, ``--no-foo`` when it defaults
  to True (``progress`` gives ``--no-progress``); ``bool | None`` takes ``true/false/auto``;
- ``Literal[...]`` gives the choices, as does a field named ``env`` (an environment family) or
  ``precision``; ``X | None`` takes an X; lists, tuples and sequences take one or more values;
- the help is the field's docstring and its default.
"""

from __future__ import annotations

import argparse
import collections.abc
import dataclasses
import re
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal, TypeVar

from irl_agents.configs import field_docs

T = TypeVar("T")

FLAGS = {"out_dir": "--out", "num_threads": "--threads"}
"""Fields whose flag is not their name: the same spelling on every subcommand."""


def _shared_choices() -> dict[str, Callable[[], list[str]]]:
    from irl_agents.precision import PRECISIONS
    from irl_envs.families import FAMILIES

    return {"env": lambda: sorted(FAMILIES), "precision": lambda: list(PRECISIONS)}


def flag(name: str, prefix: str = "") -> str:
    """The option of field ``name`` (see the module docstring)."""
    if not prefix and name in FLAGS:
        return FLAGS[name]
    return "--" + prefix + name.replace("_", "-")


def dest(name: str, prefix: str = "") -> str:
    """The namespace attribute of field ``name`` (``env.max_steps`` -> ``env__max_steps``)."""
    return prefix.replace(".", "__") + name


def parse_bool(text: str) -> bool | None:
    """``true/false`` (or ``1/0``, ``yes/no``, ``on/off``), and ``auto``/``none`` for None."""
    low = text.lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off"):
        return False
    if low in ("none", "auto"):
        return None
    raise argparse.ArgumentTypeError(f"expected a boolean (true/false/auto), got {text!r}")


def _fields(cls: type, only: Iterable[str] | None, skip: Iterable[str]) -> list:
    fields = dataclasses.fields(cls)
    names = {f.name for f in fields}
    wanted = set(names if only is None else only) - set(skip)
    unknown = wanted - names
    if unknown:
        raise ValueError(f"{cls.__name__} has no field(s) {sorted(unknown)}")
    return [f for f in fields if f.name in wanted]


def _default(field: dataclasses.Field) -> Any:
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return None


def _unwrap_optional(hint: Any) -> tuple[Any, bool]:
    """``(X, True)`` for ``X | None``, else ``(hint, False)``."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return hint, False


def _show(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return " ".join(map(str, value)) if value else "none"
    return "none" if value == "" else str(value)


_ROLE = re.compile(r":[a-z]+:`(~?)([^`]+)`")
"""A reST cross-reference; ``~`` asks for the last dotted part only."""


def plain(doc: str) -> str:
    """A docstring as help text: reST roles and literals as plain text, ``%`` escaped."""
    text = _ROLE.sub(lambda m: m[2].rsplit(".", 1)[-1] if m[1] else m[2], doc)
    return text.replace("``", "").replace("%", "%%")


def _argument(name: str, hint: Any, default: Any, doc: str, prefix: str
              ) -> tuple[list[str], dict[str, Any]]:
    """The flags and ``add_argument`` keywords of one field."""
    base, optional = _unwrap_optional(hint)
    text = plain(doc)
    kwargs: dict[str, Any] = {"dest": dest(name, prefix)}
    flags = [flag(name, prefix)]
    if base is bool and not optional:
        if default:
            flags = ["--" + prefix + "no-" + name.replace("_", "-")]
            kwargs |= {"action": "store_false", "help": f"turns off: {text}"}
        else:
            kwargs |= {"action": "store_true", "help": text}
        return flags, kwargs
    kwargs["default"] = default
    kwargs["help"] = f"{text} (default: {_show(default)})"
    kwargs["metavar"] = flags[0][2:].upper().replace("-", "_")
    origin = typing.get_origin(base)
    if base is bool:  # bool | None
        kwargs |= {"type": parse_bool, "metavar": "BOOL"}
    elif origin is Literal:
        choices = list(typing.get_args(base))
        kwargs |= {"choices": choices, "type": type(choices[0])}
        del kwargs["metavar"]  # argparse shows the choices
    elif origin in (list, tuple, collections.abc.Sequence):
        item = typing.get_args(base)[0]
        kwargs |= {"nargs": "+" if default else "*", "type": item}
    elif isinstance(base, type) and base in (int, float, str):
        kwargs["type"] = base
    else:
        raise TypeError(f"field {name!r}: no command-line form for type {hint!r}")
    choices = _shared_choices().get(name)
    if choices is not None and "choices" not in kwargs and base is str:
        kwargs["choices"] = choices()
        del kwargs["metavar"]
    return flags, kwargs


def add_options(parser: argparse.ArgumentParser | argparse._ArgumentGroup, cls: type, *,
                only: Iterable[str] | None = None, skip: Iterable[str] = (),
                required: Iterable[str] = (), prefix: str = "",
                aliases: Mapping[str, Iterable[str]] | None = None,
                overrides: Mapping[str, Mapping[str, Any]] | None = None) -> None:
    """Add one option per field of dataclass ``cls`` (module docstring).

    Args:
        parser: a parser, or an argument group (e.g. mutually exclusive options).
        cls: the settings dataclass.
        only, skip: the fields to include (default all) and to leave out.
        required: fields the command line must give (their default is not used).
        prefix: nested settings, e.g. ``"env."`` for ``--env.max-steps``.
        aliases: more flags per field, e.g. ``{"obs_weight": ["--lambda"]}``.
        overrides: ``add_argument`` keywords per field replacing the derived ones (e.g. a
            ``nargs`` of a command that sweeps a value).
    """
    hints = typing.get_type_hints(cls)
    docs = field_docs(cls)
    required = set(required)
    for field in _fields(cls, only, skip):
        hint = hints[field.name]
        if dataclasses.is_dataclass(hint):  # nested settings: --NAME.FIELD
            add_options(parser, hint, prefix=f"{prefix}{field.name}.")
            continue
        flags, kwargs = _argument(field.name, hint, _default(field),
                                  docs.get(field.name, ""), prefix)
        if field.name in required:
            kwargs.pop("default", None)
            kwargs["required"] = True
            kwargs["help"] = kwargs["help"].split(" (default:")[0]
        override = dict((overrides or {}).get(field.name, {}))
        if "choices" in override and "metavar" not in override:
            kwargs.pop("metavar", None)  # argparse shows the choices
        kwargs |= override
        parser.add_argument(*flags, *(aliases or {}).get(field.name, ()), **kwargs)


def from_args(cls: type[T], args: argparse.Namespace, *, only: Iterable[str] | None = None,
              skip: Iterable[str] = (), prefix: str = "", **values: Any) -> T:
    """An instance of ``cls`` from the options :func:`add_options` added (with the same
    ``only`` / ``skip`` / ``prefix``); ``values`` set other fields (or replace parsed ones)."""
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for field in _fields(cls, only, skip):
        hint = hints[field.name]
        if dataclasses.is_dataclass(hint):
            kwargs[field.name] = from_args(hint, args, prefix=f"{prefix}{field.name}.")
            continue
        value = getattr(args, dest(field.name, prefix))
        if typing.get_origin(_unwrap_optional(hint)[0]) is tuple and value is not None:
            value = tuple(value)
        kwargs[field.name] = value
    return cls(**(kwargs | values))


def has_option(parser: argparse.ArgumentParser, option: str) -> bool:
    """Whether ``parser`` already has ``option`` (argparse offers no public way to ask)."""
    return option in parser._option_string_actions
