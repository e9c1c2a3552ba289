"""The drivers of one kind by name: one registry per kind (dataplane, ipsec, cloud), each with
`load(cfg)` in its package. Config validation asks the same registry, so an unknown name is
refused once, naming the field and listing the valid names."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Generic, TypeVar

from intercloud.errors import Invalid

S = TypeVar("S")
D = TypeVar("D")


class Registry(Generic[S, D]):
    """`field`: where the name is configured (e.g. "ipsec.driver"); `makers`: name -> a
    function building that driver from the settings (imports it only then)."""

    def __init__(self, field: str, makers: Mapping[str, Callable[[S], D]]) -> None:
        self.field = field
        self._makers = dict(makers)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._makers)

    def check(self, name: str) -> str:
        if name not in self._makers:
            raise Invalid(
                f"config {self.field}: unknown driver {name!r} (valid: {', '.join(self.names)})",
                field=self.field,
            )
        return name

    def load(self, name: str, settings: S) -> D:
        return self._makers[self.check(name)](settings)
