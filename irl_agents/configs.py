"""What every settings dataclass shares: a JSON round trip and its fields' docstrings.

Settings are plain dataclasses whose fields each carry a docstring (the string right under the
field). :class:`DictConfig` gives them ``to_dict`` / ``from_dict`` (written once here), and
:func:`field_docs` reads those docstrings, which the command line shows as each option's help
(:mod:`irl_agents.commands.options`).
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import inspect
import textwrap
import typing
from typing import Any, TypeVar

T = TypeVar("T", bound="DictConfig")


class DictConfig:
    """Mixin for settings dataclasses: ``to_dict`` and its checked inverse ``from_dict``."""

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable dict (nested settings become nested dicts)."""
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls: type[T], data: dict[str, Any]) -> T:
        """Inverse of :meth:`to_dict`; ``ValueError`` on unknown keys or bad values. Nested
        settings (a field whose type is another :class:`DictConfig`) are rebuilt too."""
        if not isinstance(data, dict):
            raise ValueError(f"{cls.__name__}.from_dict expects a dict, got {type(data).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"{cls.__name__}: unknown field(s) {unknown}")
        hints = typing.get_type_hints(cls)
        values = {k: hints[k].from_dict(v) if _is_config(hints[k]) and isinstance(v, dict)
                  else v for k, v in data.items()}
        try:
            return cls(**values)
        except TypeError as exc:  # e.g. a missing field without a default
            raise ValueError(f"{cls.__name__}: {exc}") from exc


def _is_config(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, DictConfig)


@functools.cache
def field_docs(cls: type) -> dict[str, str]:
    """The docstring under each field of dataclass ``cls`` and its bases, whitespace folded."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass) or klass is object:
            continue
        try:
            source = textwrap.dedent(inspect.getsource(klass))
        except (OSError, TypeError):  # no source (e.g. built in a REPL): no help text
            continue
        body = ast.parse(source).body[0].body  # type: ignore[attr-defined]
        for node, nxt in zip(body, body[1:], strict=False):
            if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
                    and isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant)
                    and isinstance(nxt.value.value, str)):
                docs[node.target.id] = " ".join(nxt.value.value.split())
    return docs
