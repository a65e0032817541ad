"""A tiny name → function registry used for every variant axis of the objective.

Each axis (off-policy shaping, on-policy ratio, loss aggregation, advantage statistics and
scaling) is a `Registry`; adding a variant is one decorated function. Looking up an unknown
name raises a `ValueError` that lists the valid names, so a config typo fails loudly.

A variant that takes parameters registers its typed parameter model next to it
(``register(name, params=Model)``); the config validates a variant's parameters with that model,
so a parameter the variant does not take is rejected (see ``luffy.algos.shaping``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

F = TypeVar("F", bound=Callable)


class Registry(Generic[F]):
    """Named functions for one variant axis (e.g. ``"shaping"``)."""

    def __init__(self, axis: str) -> None:
        self.axis = axis
        self._fns: dict[str, F] = {}
        self._params: dict[str, type | None] = {}

    def register(self, name: str, params: type | None = None) -> Callable[[F], F]:
        """Decorator: register ``fn`` under ``name`` (names are unique per axis), optionally with
        ``params``, the model of the keyword arguments ``fn`` takes besides its tensors."""

        def deco(fn: F) -> F:
            if name in self._fns:
                raise ValueError(f"{self.axis}: {name!r} is already registered")
            self._fns[name] = fn
            self._params[name] = params
            return fn

        return deco

    def get(self, name: str) -> F:
        try:
            return self._fns[name]
        except (KeyError, TypeError):
            raise ValueError(
                f"unknown {self.axis} {name!r}; expected one of: {', '.join(sorted(self._fns))}"
            ) from None

    def params(self, name: str) -> type | None:
        """The parameter model registered with ``name`` (None if it has none); unknown names raise."""
        self.get(name)
        return self._params[name]

    def names(self) -> list[str]:
        return sorted(self._fns)

    def __contains__(self, name: object) -> bool:
        return name in self._fns

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
