"""The reporter interface: turns a finished run into report stubs for people.

Reporters write only under the run's ``restricted/`` directory (owner-only), since a
report necessarily points at matched items. They never submit anything anywhere.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

import pyarrow as pa


class Reporter(ABC):
    name: ClassVar[str]

    @abstractmethod
    def write(self, exclusions: pa.Table, run: dict[str, Any], summary: dict[str, Any],
              directory: Path) -> list[Path]:
        """Write stubs into ``directory`` (already owner-only); return the paths written."""
