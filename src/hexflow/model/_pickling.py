"""Faster pickling of frozen slots dataclasses, with the very same pickled state.

The state ``dataclasses`` gives such a class is the list of its field values in order,
built and applied by iterating ``fields()`` on every call. The engine pickles every spec it
persists (``create_run``), so the same state is built here with a precomputed getter.
A state pickled before a field was added (an older store) is shorter: the fields it lacks
get their defaults.
"""

from __future__ import annotations

import operator
from dataclasses import MISSING, fields
from typing import Any

_setattr = object.__setattr__


def fast_state(cls: type) -> None:
    names = tuple(f.name for f in fields(cls))
    get = operator.attrgetter(*names)
    defaults = {f.name: (f.default, f.default_factory) for f in fields(cls)}

    def __getstate__(self: Any) -> list[Any]:
        return list(get(self))

    def __setstate__(self: Any, state: list[Any]) -> None:
        for name, value in zip(names, state, strict=False):
            _setattr(self, name, value)
        for name in names[len(state) :]:  # fields added since (trailing, with defaults)
            default, factory = defaults[name]
            _setattr(self, name, default if factory is MISSING else factory())

    setattr(cls, "__getstate__", __getstate__)  # noqa: B010 - replaces the dataclass one
    setattr(cls, "__setstate__", __setstate__)  # noqa: B010
