"""Optuna TPE: black-box hyperparameter search, the next trial proposed by a Tree-structured Parzen
Estimator fitted to the trials so far (the reference benchmark's `Optuna` baseline).

Each step is one trial t, as in `random_search` except for the proposal:

    x_t = Π_box(x0) at t = 0 (the reference enqueues the start as the first trial), else the
          point Optuna's TPESampler asks for (`suggest_float` per coordinate in the problem's box,
          log-scaled on a log box), given trials 0 … t−1 and a seed drawn from the run's key;
    y_t ≈ y*(x_t) by full-batch L-BFGS to ‖∇_y g‖ ≤ inner_tol;  f_t = f(x_t, y_t) (full batch);

and the output is the trial of smallest f_t so far. The trials (x_t in the run's dtype, f_t) are
part of the state, so a step is a function of its state: the sampler is a fresh
TPESampler(seed) on a study holding exactly those trials. Rebuilding that study costs O(t)
Python objects per trial (0.26 s at 1,000 trials), so the study of the last state is kept
aside, keyed by a hash of its trials, and extended by one trial instead; a miss rebuilds it, and
a hit gives the same proposal (the study's extra failed placeholder trials are ignored by TPE).

Host-side: Optuna is Python, and the inner loop stops at a tolerance.

Oracle cost per step (full batch; a cap, the loop stops at the tolerance): at most
inner_max_iter + 1 grad_inner_full and 1 + inner_max_iter · max_backtracks value_inner_full,
and exactly 1 value_outer_full (as random search).

Reference: T. Akiba, S. Sano, T. Yanase, T. Ohta, M. Koyama. "Optuna: a next-generation
hyperparameter optimization framework", KDD 2019; the sampler: J. Bergstra, R. Bardenet,
Y. Bengio, B. Kégl. "Algorithms for hyper-parameter optimization", NeurIPS 2011.
"""
from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from benchopt_bilevel.oracles import Oracles
from benchopt_bilevel.params import ours, reference
from benchopt_bilevel.solver import Choice, IntRange, LogUniform, State

from .random_search import MAX_DIM_WHY, RandomSearch

if TYPE_CHECKING:
    import optuna

Tensor = torch.Tensor
STUDIES_KEPT = 4  # studies kept aside (one per run in progress in this process is enough)
_STUDIES: OrderedDict[bytes, "optuna.Study"] = OrderedDict()


def _optuna() -> Any:
    """Optuna, imported on first use: its import takes 0.6 to 1.6 s here, which every command
    that loads the solver registry would otherwise pay."""
    import optuna  # noqa: PLC0415

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # no line per trial (as the reference)
    return optuna


@dataclass
class OptunaTPEParams:
    n_startup_trials: int = reference(10, "solvers/optuna.py: TPESampler's default (random trials first)")
    # One Parzen estimator per coordinate (independent TPE) or a joint one over x (multivariate).
    multivariate: bool = reference(False, "solvers/optuna.py: TPESampler() before Optuna 5 was "
                                          "independent (the version it ran; from memory)")
    inner_tol: float = reference(1e-3, "solvers/optuna.py: jaxopt LBFGS's default tol on ‖∇_y g‖")
    inner_max_iter: int = reference(500, "solvers/optuna.py: jaxopt LBFGS's default maxiter")
    lbfgs_memory: int = reference(10, "solvers/optuna.py: jaxopt LBFGS's default history_size")
    max_backtracks: int = reference(15, "solvers/optuna.py: jaxopt LBFGS's default maxls (from memory)")
    max_dim: int = ours(100, MAX_DIM_WHY)

    def __post_init__(self) -> None:
        if self.n_startup_trials < 0:
            raise ValueError(f"n_startup_trials must be >= 0, got {self.n_startup_trials}")
        if not self.inner_tol > 0:
            raise ValueError(f"inner_tol must be positive, got {self.inner_tol}")
        if min(self.inner_max_iter, self.lbfgs_memory, self.max_backtracks, self.max_dim) < 1:
            raise ValueError("inner_max_iter, lbfgs_memory, max_backtracks and max_dim must be at least 1")


def _names(dim: int) -> list[str]:
    return [f"x_{j}" for j in range(dim)]


def distributions(state: State) -> dict[str, Any]:
    """One `suggest_float` range per coordinate: the box, as the run's dtype holds it."""
    log, float_range = bool(state["log_scale"]), _optuna().distributions.FloatDistribution
    return {name: float_range(low, high, log=log)
            for name, low, high in zip(_names(state["low"].numel()), state["low"].tolist(), state["high"].tolist())}


def _fingerprint(xs: Tensor, values: Tensor, box: dict[str, Any]) -> bytes:
    digest = hashlib.blake2b(digest_size=16)
    for tensor in (xs, values):
        digest.update(str((tensor.dtype, tuple(tensor.shape))).encode())
        digest.update(tensor.detach().cpu().numpy().tobytes())
    digest.update(repr(sorted(box.items())).encode())
    return digest.digest()


def _frozen(x: list[float], value: float, box: dict[str, Any]) -> "optuna.trial.FrozenTrial":
    """A finished trial at x (a failed trial's value is the dtype's largest: TPE ranks it last)."""
    return _optuna().trial.create_trial(params=dict(zip(box, x)), distributions=box, value=value)


def study_of(xs: Tensor, values: Tensor, box: dict[str, Any]) -> "optuna.Study":
    """A study holding exactly the trials (xs[i], values[i]), taken from the ones kept aside when
    one holds them or all but the last, built otherwise. The caller owns it (it is no longer kept)."""
    study = _STUDIES.pop(_fingerprint(xs, values, box), None)
    if study is None and len(values) > 0:
        study = _STUDIES.pop(_fingerprint(xs[:-1], values[:-1], box), None)
        if study is not None:
            study.add_trial(_frozen(xs[-1].tolist(), float(values[-1]), box))
    if study is None:
        study = _optuna().create_study(direction="minimize")
        study.add_trials([_frozen(x, v, box) for x, v in zip(xs.tolist(), values.tolist())])
    return study


def keep(study: "optuna.Study", xs: Tensor, values: Tensor, box: dict[str, Any]) -> None:
    """Keep `study` (which holds the trials xs, values) for the next step."""
    _STUDIES[_fingerprint(xs, values, box)] = study
    while len(_STUDIES) > STUDIES_KEPT:
        _STUDIES.popitem(last=False)


class OptunaTPE(RandomSearch):
    name = "optuna-tpe"
    description = "Black-box baseline: Optuna's TPE proposes each trial's hyperparameters, inner problem solved per trial"
    reference = "Akiba et al., KDD 2019 (Optuna); TPE: Bergstra et al., NeurIPS 2011"
    host_side = ("each trial's x comes from Optuna's TPE sampler (Python on the host), and its "
                 "inner solve runs until ‖∇_y g‖ ≤ inner_tol (a number of oracle calls that varies with x)")
    deviations = (
        "One trial per step (the reference runs 5 trials between two evaluations).",
        "A fresh TPESampler seeded from the run's key at each trial, on a study of the trials in "
        "the state (the reference seeds one sampler for the whole run): the step is a function of "
        "its state.",
        "Proposals are rounded to the run's dtype before the trial, and TPE sees the rounded values.",
        "The search range is the problem's declared box ([-5, 5] per coordinate on every problem "
        "here, as the reference's suggest_float range).",
        "Inner solve: L-BFGS to jaxopt's default tolerance as the reference, with a backtracking "
        "line search instead of jaxopt's zoom line search.",
    )
    reference_name = "Optuna"
    reference_params = {}
    Params = OptunaTPEParams
    search_space = {"inner_tol": LogUniform(1e-6, 1e-1), "n_startup_trials": IntRange(1, 50),
                    "multivariate": Choice((False, True))}

    def init(self, oracles: Oracles, x: Tensor, y: Tensor, key: Tensor) -> State:
        state = super().init(oracles, x, y, key)
        return {**state, "trials_x": x.new_zeros((0, x.numel())), "trials_value": x.new_zeros((0,))}

    def propose(self, state: State, key: Tensor) -> Tensor:
        """The point TPE asks for next, given the trials of the state and a seed from `key`."""
        box = distributions(state)
        xs, values = state["trials_x"], state["trials_value"]
        study = study_of(xs, values, box)
        p = self.params
        # constant_liar only matters with trials running in parallel (none here); off, TPE reads
        # the study's trial cache (the reference's Optuna default, too).
        optuna = _optuna()
        study.sampler = optuna.samplers.TPESampler(seed=int(key), n_startup_trials=p.n_startup_trials,
                                                   multivariate=p.multivariate, constant_liar=False)
        asked = study.ask(box)
        # Recorded once evaluated, in the run's dtype (the next step adds it); the asked trial
        # stays in the study as failed, which TPE ignores.
        study.tell(asked, state=optuna.trial.TrialState.FAIL)
        keep(study, xs, values, box)
        x = state["x"]
        return torch.tensor([asked.params[name] for name in box], dtype=x.dtype, device=x.device).reshape(x.shape)

    def record(self, state: State, x: Tensor, value: Tensor) -> State:
        """Every trial, for the next proposals."""
        return {"trials_x": torch.cat([state["trials_x"], x.reshape(1, -1)]),
                "trials_value": torch.cat([state["trials_value"], value.reshape(1)])}
