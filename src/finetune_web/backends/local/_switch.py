"""What a training run switches to a faster exact form, and how it gives it back."""

from __future__ import annotations

from typing import Any

import attrs

__all__ = ["Switch"]


@attrs.define
class Switch:
    """Things switched to a faster form while training runs (layers, modelling modules).

    Attributes:
        switched: what was switched (empty: nothing was eligible).
    """

    switched: list[Any] = attrs.field(factory=list, repr=False)

    @property
    def active(self) -> bool:
        """Whether anything is switched."""
        return bool(self.switched)

    def restore(self) -> None:
        """Give everything switched its own form back."""
        for item in self.switched:
            self._give_back(item)
        self.switched = []

    def _give_back(self, item: Any) -> None:
        """Undo the switch of one ``item``."""
        raise NotImplementedError
