"""Quality-of-service classes (NERSC-style names) with priority and response-time targets.

Lower ``priority`` numbers go first. ``response_target`` is the time from submission to
start that the class promises, in seconds (None: best effort).
"""

from __future__ import annotations

from enum import StrEnum

from hexflow.errors import SpecError


class QoS(StrEnum):
    REALTIME = "realtime"
    URGENT = "urgent"
    INTERACTIVE = "interactive"
    REGULAR = "regular"
    PREEMPT = "preempt"

    @property
    def priority(self) -> int:
        return _PRIORITY[self]

    @property
    def response_target(self) -> float | None:
        return _RESPONSE_TARGET[self]

    @property
    def preemptible(self) -> bool:
        return self is QoS.PREEMPT

    @property
    def may_preempt(self) -> bool:
        return self in (QoS.REALTIME, QoS.URGENT)

    @classmethod
    def parse(cls, value: QoS | str | None) -> QoS:
        if value is None:
            return cls.REGULAR
        if isinstance(value, QoS):
            return value
        try:
            return cls(str(value).lower())
        except ValueError:
            names = ", ".join(q.value for q in cls)
            raise SpecError(
                f"qos: unknown class {value!r}", hint=f"use one of {names}", field="qos"
            ) from None


_PRIORITY = {
    QoS.REALTIME: 0,
    QoS.URGENT: 1,
    QoS.INTERACTIVE: 2,
    QoS.REGULAR: 3,
    QoS.PREEMPT: 4,
}
_RESPONSE_TARGET: dict[QoS, float | None] = {
    QoS.REALTIME: 10.0,
    QoS.URGENT: 60.0,
    QoS.INTERACTIVE: 300.0,
    QoS.REGULAR: None,
    QoS.PREEMPT: None,
}
