"""The problem contract: what a bilevel problem gives the engine.

    min_x h(x) = f(x, y*(x)),   y*(x) = argmin_y g(x, y)   (y possibly constrained).

A problem holds its data as tensors and exposes `inner` (g) and `outer` (f) as pure functions of
(x, y, batch). A batch is a 0-dim int64 tensor naming one of the fixed mini-batch blocks (the
data are shuffled once when the problem is built; block b is rows [b * batch_size, (b + 1) *
batch_size)), or `None` for the full batch. Blocks make sampling a pure tensor operation and give
variance-reduced methods a natural per-block memory, as in the reference JAX benchmark.

Optional pieces, each with a default:
- hand-derived oracles with the names of `Oracles` (`grad_inner_y`, `hvp_inner`, ...): faster than
  autograd, checked against it in the tests;
- exact quantities (`y_star`, `value`, `hypergradient`, `v_star`, `x_star`), used by `evaluate`;
- `project_y(y)` for a constrained lower level (identity otherwise);
- `y_start(x, batch)`: where the inner problem of a batch starts (default: the constant y0());
  methods that differentiate through the inner path also differentiate this start;
- `inner_map(x, y, batch)`: a map T whose fixed point is y*(x), when the problem is naturally
  stated as y = T(x, y) (an implicit layer); without one, fixed-point methods use the gradient
  step T(x, y) = y − α ∇_y g(x, y) with their own α;
- `y_rows`: y reshaped to (y_rows, -1) has rows whose inner problems are independent (T maps
  each row from that row alone), so a root finder may solve each row separately (default 1).
- `hyperparameter_box()`: where x lives for black-box search (random search, TPE), a
  `HyperparameterBox` of bounds per coordinate, searched uniformly or log-uniformly (default
  None: those solvers skip the problem and say so).

A problem's floating tensors share one dtype and device, `dtype` and `device`: float64 on the CPU
as built, and the run's once `to(device, dtype)` has moved them (the runner always calls it).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, ClassVar

import torch


@dataclasses.dataclass(frozen=True)
class HyperparameterBox:
    """Where a problem's hyperparameters x live for black-box search: low ≤ x ≤ high per
    coordinate (float64 tensors of shape (dim_x,)). `log`: x is a positive scale searched
    log-uniformly (log x uniform in [log low, log high]); off when x is already a log-penalty."""

    low: torch.Tensor
    high: torch.Tensor
    log: bool = False

    def __post_init__(self) -> None:
        if self.low.shape != self.high.shape or self.low.dim() != 1:
            raise ValueError(f"box bounds must be two vectors of one shape, got {list(self.low.shape)} "
                             f"and {list(self.high.shape)}")
        if not bool(torch.all(self.low < self.high)):
            raise ValueError("box needs low < high in every coordinate")
        if self.log and not bool(torch.all(self.low > 0)):
            raise ValueError("a log-scale box needs low > 0")

    @classmethod
    def uniform(cls, dim: int, low: float, high: float, log: bool = False) -> "HyperparameterBox":
        """The same bounds [low, high] for each of `dim` coordinates."""
        full = lambda value: torch.full((dim,), float(value), dtype=torch.float64)  # noqa: E731
        return cls(full(low), full(high), log)


class Problem:
    """Base class of every bilevel problem (one subclass per file in `problems/`)."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    # A dataclass whose fields (with defaults) are the problem's parameters.
    Params: ClassVar[type] = type("Params", (), {})
    # Every problem names, among the keys of its `evaluate`: the metric time-to-target is measured
    # on (with its documented target value), and the one benchopt's `objective_value` column
    # shows. No default: metrics differ between problems, so a default name would be missing on some.
    target_metric: ClassVar[str]
    target_value: ClassVar[float] = float("nan")
    value_metric: ClassVar[str]
    # Metric that should decrease; used by the runner's divergence check.
    divergence_metric: ClassVar[str | None] = None
    twice_differentiable: ClassVar[bool] = True
    constrained: ClassVar[bool] = False
    # Attributes kept in float64 whatever the run's dtype: exact answers used by `evaluate`.
    float64_attributes: ClassVar[tuple[str, ...]] = ()
    # Episodic problems (meta-learning tasks, DEQ mini-batches): a batch is a whole task, its
    # inner and outer objectives must be taken on the same batch, and the inner solution starts
    # afresh for each task from `y_start(x, batch)` (y is not carried across batches).
    episodic: ClassVar[bool] = False
    # A map T(x, y, batch) whose fixed point is y*(x), when the problem states one (see above).
    inner_map: ClassVar[Callable[..., torch.Tensor] | None] = None
    y_rows: int = 1  # independent rows of y (see above)

    dim_x: int
    dim_y: int
    n_inner_batches: int
    n_outer_batches: int

    def __init__(self, params: Any, generator: torch.Generator) -> None:
        self.params = params
        self.dtype: torch.dtype = torch.float64
        self.device: torch.device = torch.device("cpu")

    # -- objectives -------------------------------------------------------------------------
    def inner(self, x: torch.Tensor, y: torch.Tensor, batch: torch.Tensor | None) -> torch.Tensor:
        """g(x, y) on one mini-batch block (or the full data when `batch is None`)."""
        raise NotImplementedError

    def outer(self, x: torch.Tensor, y: torch.Tensor, batch: torch.Tensor | None) -> torch.Tensor:
        """f(x, y) on one mini-batch block (or the full data when `batch is None`)."""
        raise NotImplementedError

    @staticmethod
    def block(samples: torch.Tensor, batch: torch.Tensor) -> torch.Tensor:
        """Block `batch` of data stored as (n_batches, batch_size, ...).

        Eager on CPU: a view (reading the index on the host is free there), so an oracle reads
        the block once instead of copying it first (4-5x faster on the quadratic's matrices).
        Elsewhere `index_select` rather than `samples[batch]`: indexing with a 0-dim tensor reads
        its value on the host (a device sync on GPU, and a graph break under torch.compile);
        compiled, Inductor fuses the gather into the reduction that follows.
        """
        if batch.device.type == "cpu" and not torch.compiler.is_compiling():
            return samples.select(0, int(batch))
        return torch.index_select(samples, 0, batch.reshape(1)).squeeze(0)

    # -- starting point, constraints, metrics -------------------------------------------------
    def x0(self) -> torch.Tensor:
        return torch.zeros(self.dim_x, dtype=self.dtype, device=self.device)

    def y0(self) -> torch.Tensor:
        return torch.zeros(self.dim_y, dtype=self.dtype, device=self.device)

    def y_start(self, x: torch.Tensor, batch: torch.Tensor | None) -> torch.Tensor:
        """Where the inner problem of `batch` starts: a constant by default (y0)."""
        return self.y0()

    def project_y(self, y: torch.Tensor) -> torch.Tensor:
        """Euclidean projection on the lower-level feasible set (identity when unconstrained)."""
        return y

    def hyperparameter_box(self) -> HyperparameterBox | None:
        """Where x lives for black-box search (random search, TPE); None: not declared, and those
        solvers skip the problem."""
        return None

    def evaluate(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
        """Metrics at (x, y); never timed. Subclasses add theirs to this dict."""
        with torch.no_grad():
            return {
                "inner_value": float(self.inner(x, y, None)),
                "outer_value": float(self.outer(x, y, None)),
            }

    # -- device and dtype ------------------------------------------------------------------
    def to(self, device: torch.device | str, dtype: torch.dtype) -> "Problem":
        """Move every tensor attribute to `device`; floating ones are cast to `dtype` (except the
        exact answers of `float64_attributes`). Both become the problem's `dtype` and `device`."""
        # The device tensors land on ("cuda" resolves to "cuda:0"), so that it compares equal.
        self.dtype, self.device = dtype, torch.empty(0, device=device).device
        for key, value in list(vars(self).items()):
            if isinstance(value, torch.Tensor):
                target_dtype = dtype if value.is_floating_point() else value.dtype
                if key in self.float64_attributes:
                    target_dtype = torch.float64
                setattr(self, key, value.to(device=device, dtype=target_dtype))
        return self

    def describe(self) -> dict[str, Any]:
        """Problem parameters as a flat dict (stored with every result row)."""
        if dataclasses.is_dataclass(self.params):
            return dataclasses.asdict(self.params)
        return {}

    @property
    def dataset_name(self) -> str:
        """Name of the data the problem was built on (the problem's own name if synthetic)."""
        return getattr(self.params, "dataset", self.name)
