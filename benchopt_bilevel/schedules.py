"""Step-size schedules shared by every solver: functions of the step counter t (a tensor).

A solver builds its schedules once, from its parameters (in `__init__`), and its step only
calls them: γ_t = schedule(state["t"]).
"""
from __future__ import annotations

from typing import Callable

import torch

Schedule = Callable[[torch.Tensor], "torch.Tensor | float"]


def make_schedule(step: float, power: float = 0.0) -> Schedule:
    """γ_t = step when power == 0, else γ_t = step / (t + 1)^power (the a / t^b schedules).

    `step` and `power` may be 0-dim tensors (a fast build's hyperparameters, `fast.py`): the
    general form then serves every value, (t + 1)^0 being exactly 1."""
    if isinstance(power, float) and power == 0.0:
        return lambda t: step
    return lambda t: step / (t + 1.0) ** power
