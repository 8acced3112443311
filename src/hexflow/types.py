"""Shared identifier and alias types used across layers."""

from __future__ import annotations

from typing import TypeAlias

RunId: TypeAlias = str
TaskId: TypeAlias = str
Seconds: TypeAlias = float
