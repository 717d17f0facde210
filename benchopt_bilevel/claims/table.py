"""The claims table: DIR/claims.json, the verdicts `benchopt-bilevel claims` writes beside its runs.

One JSON document, {"format", "version", "claims": [entry, ...]}, an entry per claim (id, paper,
statement, scale, notes, experiment, verdict, summary, figures, plot with its curves, run_ids,
wall_time). NaN is written null and infinities "inf" / "-inf" (strict JSON). Reading and writing
only: the publishing and site layers read it without importing the runner.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import atomic_write
from ..errors import UserError

CLAIMS_FILE = "claims.json"
CLAIMS_FORMAT = "benchopt-bilevel-claims"
CLAIMS_VERSION = 1


def write_claims(output_dir: str | Path, entries: list[dict[str, Any]], merge: bool = True) -> Path:
    """Merge ENTRIES into OUTPUT_DIR/claims.json by id (the new entry wins; with merge=False they
    replace the file's), atomically."""
    path = Path(output_dir) / CLAIMS_FILE
    previous = {e["id"]: e for e in read_claims(output_dir)} if merge and path.is_file() else {}
    previous.update({e["id"]: e for e in entries})
    document = {"format": CLAIMS_FORMAT, "version": CLAIMS_VERSION,
                "claims": [previous[key] for key in sorted(previous)]}
    Path(output_dir).mkdir(parents=True, exist_ok=True)
    return atomic_write(path, (json.dumps(clean(document), indent=1, allow_nan=False) + "\n").encode())


def read_claims(directory: str | Path) -> list[dict[str, Any]]:
    """The entries of DIRECTORY/claims.json ([] when there is none)."""
    path = Path(directory) / CLAIMS_FILE
    if not path.is_file():
        return []
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise UserError(f"cannot read {path}: {error}") from None
    if not isinstance(document, dict) or document.get("format") != CLAIMS_FORMAT:
        raise UserError(f"{path} is not a {CLAIMS_FORMAT} table")
    return list(document.get("claims", []))


def clean(value: Any) -> Any:
    """JSON without NaN or infinity: NaN -> null, ±inf -> "inf" / "-inf"; numpy scalars -> Python."""
    if isinstance(value, dict):
        return {str(k): clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean(v) for v in value]
    if isinstance(value, (np.floating, np.integer)):
        value = value.item()
    if isinstance(value, float):
        if math.isnan(value):
            return None
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
    return value
