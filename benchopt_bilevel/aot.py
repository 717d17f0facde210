"""Steps compiled ahead of time: torch.export + AOTInductor, called without Python in between.

`torch.compile` pays a fixed cost per call on top of the generated code: dynamo's frame hook and
guards, then AOTAutograd's runtime wrappers (~35 µs per call on a 2-core CPU, measured on a
function of two adds). For a batch-64 step that cost is most of the step. An exported program
compiled by AOTInductor is a shared library whose runner takes a flat list of tensors and
returns one (~4 µs per call here): the state (a dict of tensors) goes in and out as its values
in a fixed key order. The price: the step must export as one graph (no graph break, no data-dependent
Python branch — the contract of a step anyway) and compilation builds a whole C++ library.

CPU only: on a GPU the compiled path records CUDA graphs instead, which remove the same
overhead and are what `torch.compile` does there.
"""
from __future__ import annotations

import tempfile
import warnings
from pathlib import Path
from typing import Callable

import torch

from .solver import State


class _FlatSteps(torch.nn.Module):
    """`steps` as a module over the values of a state, in the order of `keys`."""

    def __init__(self, steps: Callable[[State], State], keys: list[str]) -> None:
        super().__init__()
        self.steps, self.keys = steps, keys

    def forward(self, *values: torch.Tensor) -> tuple[torch.Tensor, ...]:
        state = self.steps(dict(zip(self.keys, values)))
        if sorted(state) != sorted(self.keys):
            raise TypeError("a step must return a state with the keys of its input state")
        return tuple(state[k] for k in self.keys)


def compile_ahead(steps: Callable[[State], State], example: State) -> Callable[[State], State]:
    """`steps` exported and compiled for states shaped like `example` (same keys, shapes, dtypes)."""
    keys = list(example)
    if not all(isinstance(example[k], torch.Tensor) for k in keys):
        raise TypeError("ahead-of-time compilation needs a state of tensors (solver.State)")
    # torch's own deprecation notices from inside export/packaging say nothing to a user.
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        # Distinct copies: export would merge two entries holding the same tensor (SABA's or
        # BiAdam's initial state shares one between two keys) into one input for good.
        inputs = tuple(example[k].clone() for k in keys)
        program = torch.export.export(_FlatSteps(steps, keys), inputs, strict=False)
        with tempfile.TemporaryDirectory(prefix="benchopt-bilevel-aot-") as folder:
            package = torch._inductor.aoti_compile_and_package(program, package_path=str(Path(folder) / "steps.pt2"))
            runner = torch._inductor.aoti_load_package(package).loader  # the library stays loaded

    def run(state: State) -> State:
        return dict(zip(keys, runner.run([state[k] for k in keys])))

    return run
