"""Inductor options of fast builds (`fast.py`): what AOTInductor is told when it builds a
library. One place, so that a change here is part of the build's identity (the cache key hashes
this file with the rest of the engine's code)."""
from __future__ import annotations

from typing import Any

# Passed as `inductor_configs` to `aoti_compile_and_package`.
INDUCTOR_OPTIONS: dict[str, Any] = {}
