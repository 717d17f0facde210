"""A JAX comparator for the fast path: minimal jitted SOBA, SABA and AmIGO steps on logreg
(ijcnn1, batch 64, float32), and ESJ's full-batch step, timed on the machine that times ours.

The reference benchmark's µs-per-step figures were measured with JAX on another CPU. Timing the
same kind of code here, in the same run as the fast path, turns them into figures for this CPU
(speed/test_bench_fast.py scales them by the SOBA ratio measured here). The code is written for
this purpose, following the papers (the update rules are in solvers/soba.py, solvers/saba.py and
solvers/amigo.py), in the reference's style:

- the data are our problem's (`build_problem("logreg", torch.float32)`: the same split, the same
  signed rows r_i = b_i a_i cut into blocks of 64), converted to numpy;
- the oracles come from JAX's autodiff of the two losses (grad, a jvp of the gradient for the
  Hessian-vector product, a vjp for the cross derivative), as in the reference's code;
- a mini-batch is one block drawn uniformly, a fresh key per draw, by one of two samplers:
  "hash", the counter hash of benchopt_bilevel/rng.py (our solvers' draws, so both sides do the
  same work), or "threefry", JAX's default PRNG (`jax.random`), whose draws cost as much as
  SOBA's arithmetic here (the reference itself cycles through a shuffled order of batches);
- ESJ (PZOBO) is full batch: its Q + 1 inner runs of T gradient steps from the same y, at x and
  at the Q perturbed points x + μ u_q, are one `jax.vmap`ped run, so its time is matrix products
  over all of the training rows, not dispatch. The reference's code (solvers/pzobo.py) vmaps the
  Q perturbed runs and runs the one at x apart, matrix-vector products that read the rows T more
  times: this comparator is, if anything, faster than the code behind the reference's figure.
  The SOBA ratio that scales the mini-batch figures says little about it: it is timed here for a
  figure of its own;
- an epoch is `jax.jit` of a 128-step `lax.scan` (4 steps for ESJ, whose step is milliseconds); a time is wall clock around a call followed by
  `block_until_ready`, the first call (compilation) excluded.

Run alone: `.venv/bin/python speed/jax_reference.py` prints µs per step of each method.
Threads: one intra-op thread (XLA_FLAGS set before jax is imported, unless already set), as the
torch side runs with torch.set_num_threads(1).
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any, Callable

ONE_THREAD_FLAGS = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
os.environ.setdefault("XLA_FLAGS", ONE_THREAD_FLAGS)

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from jax import lax  # noqa: E402

STEPS_PER_EPOCH = 128
STEP_INNER = 0.1  # ρ, the reference's default for the three methods (as our solvers' defaults)
OUTER_RATIO = 1.0  # γ = ρ / outer_ratio
SOBA_DECAY_INNER, SOBA_DECAY_OUTER = 0.4, 0.6  # our SOBA's default schedule (its theorem)
AMIGO_INNER_STEPS = AMIGO_LINEAR_STEPS = 10  # T and M, our AmIGO's defaults
ESJ_INNER_STEPS, ESJ_DIRECTIONS, ESJ_SMOOTHING = 10, 10, 0.1  # T, Q and μ, our ESJ's defaults
FULL_BATCH_STEPS_PER_EPOCH = 4

Array = jax.Array
State = dict[str, Array]


@dataclass(frozen=True)
class LogRegData:
    """Signed rows of the train and validation splits, as (n_blocks, batch, d) float32 arrays."""

    train: np.ndarray
    val: np.ndarray

    @property
    def dim(self) -> int:
        return self.train.shape[-1]


def logreg_data(**problem_params: Any) -> LogRegData:
    """Our logreg problem's blocks (ijcnn1, batch 64 by default), float32, as numpy."""
    import torch  # noqa: PLC0415 - only to read the problem's tensors

    from benchopt_bilevel.fixtures import build_problem  # noqa: PLC0415

    problem = build_problem("logreg", torch.float32, **problem_params)
    return LogRegData(train=problem.train.numpy().copy(), val=problem.val.numpy().copy())


# -- losses and their derivatives (autodiff) ------------------------------------------------------
def inner_loss(x: Array, y: Array, rows: Array) -> Array:
    """g: the logistic loss of a block plus ½ Σ_j exp(x_j) y_j² (per-feature ridge)."""
    return jnp.mean(jax.nn.softplus(-(rows @ y))) + 0.5 * jnp.sum(jnp.exp(x) * y * y)


def outer_loss(x: Array, y: Array, rows: Array) -> Array:
    """f: the validation logistic loss of a block (x enters only through g)."""
    return jnp.mean(jax.nn.softplus(-(rows @ y)))


grad_inner_y = jax.grad(inner_loss, argnums=1)
grad_outer_xy = jax.grad(outer_loss, argnums=(0, 1))


def hvp_inner(x: Array, y: Array, v: Array, rows: Array) -> Array:
    """∇²_yy g v: a jvp of ∇_y g."""
    return jax.jvp(lambda y_: grad_inner_y(x, y_, rows), (y,), (v,))[1]


def grad_hvp_cross_inner(x: Array, y: Array, v: Array, rows: Array) -> tuple[Array, Array, Array]:
    """∇_y g, ∇²_yy g v and ∇²_xy g v at one point on one block (one linearization of ∇_y g)."""
    grad_y, hvp = jax.jvp(lambda y_: grad_inner_y(x, y_, rows), (y,), (v,))
    _, cross_vjp = jax.vjp(lambda x_: grad_inner_y(x_, y, rows), x)
    return grad_y, hvp, cross_vjp(v)[0]


def cross_inner(x: Array, y: Array, v: Array, rows: Array) -> Array:
    """∇²_xy g v: a vjp of ∇_y g in x."""
    _, cross_vjp = jax.vjp(lambda x_: grad_inner_y(x_, y, rows), x)
    return cross_vjp(v)[0]


# -- batch draws: JAX's own PRNG, or the counter hash our solvers use ------------------------------
def _mix32(z: Array) -> Array:
    """The `lowbias32` hash of benchopt_bilevel/rng.py on uint32 (products wrap modulo 2**32)."""
    z = z ^ (z >> 16)
    z = z * jnp.uint32(0x7FEB352D)
    z = z ^ (z >> 15)
    z = z * jnp.uint32(0x846CA68B)
    return z ^ (z >> 16)


def hash_split(key: Array, num: int = 2) -> tuple[Array, ...]:
    counters = jnp.arange(1, num + 1, dtype=jnp.uint32)
    return tuple(_mix32(key * jnp.uint32(0x9E3779B1) + counters * jnp.uint32(0x632BE5AB)))


def hash_randint(key: Array, high: int) -> Array:
    return (_mix32(_mix32(key)) % jnp.uint32(high)).astype(jnp.int32)


def threefry_split(key: Array, num: int = 2) -> tuple[Array, ...]:
    return tuple(jax.random.split(key, num))


def threefry_randint(key: Array, high: int) -> Array:
    return jax.random.randint(key, (), 0, high)


# name: (make_key(seed), split(key, num), randint(key, high))
SAMPLERS: dict[str, tuple[Callable, Callable, Callable]] = {
    "hash": (lambda seed: jnp.uint32(seed * 0x9E3779B1 + 0x85EBCA6B & 0xFFFFFFFF), hash_split, hash_randint),
    "threefry": (jax.random.PRNGKey, threefry_split, threefry_randint),
}


@dataclass(frozen=True)
class Context:
    """What a step reads besides its state: the data blocks and the sampler's split and randint."""

    train: Array
    val: Array
    split: Callable
    randint: Callable

    @property
    def dim(self) -> int:
        return self.train.shape[-1]

    def draw(self, key: Array, blocks: Array) -> Array:
        """One block drawn uniformly."""
        return blocks[self.randint(key, blocks.shape[0])]


# -- the three methods: init(x, y, key) -> state, step(state) -> state ----------------------------
def soba_init(data: Context, x: Array, y: Array, key: Array) -> State:
    return {"x": x, "y": y, "v": jnp.zeros_like(y), "key": key, "t": jnp.zeros((), jnp.float32)}


def soba_step(data: Context, state: State) -> State:
    """SOBA: y, v, x along one stochastic direction each, ρ_t = ρ/(t+1)^a, γ_t = γ/(t+1)^b."""
    x, y, v, t = state["x"], state["y"], state["v"], state["t"]
    key, k_inner, k_outer = data.split(state["key"], 3)
    rho = STEP_INNER / (t + 1) ** SOBA_DECAY_INNER
    gamma = STEP_INNER / OUTER_RATIO / (t + 1) ** SOBA_DECAY_OUTER
    grad_y, hvp, cross = grad_hvp_cross_inner(x, y, v, data.draw(k_inner, data.train))
    grad_x_f, grad_y_f = grad_outer_xy(x, y, data.draw(k_outer, data.val))
    return {"x": x - gamma * (cross + grad_x_f), "y": y - rho * grad_y, "v": v - rho * (hvp + grad_y_f),
            "key": key, "t": t + 1}


SABA_MEMORIES = ("gy", "hvp", "cross", "fx", "fy")  # the first three per inner block, the rest per outer


def saba_init(data: Context, x: Array, y: Array, key: Array) -> State:
    """Memories start at zero (the reference's default, and ours)."""
    n_inner, n_outer = data.train.shape[0], data.val.shape[0]
    state = {"x": x, "y": y, "v": jnp.zeros_like(y), "key": key}
    for name in SABA_MEMORIES:
        state[f"memory_{name}"] = jnp.zeros((n_inner if name in ("gy", "hvp", "cross") else n_outer, data.dim),
                                            jnp.float32)
        state[f"mean_{name}"] = jnp.zeros(data.dim, jnp.float32)
    return state


def saga(memory: Array, mean: Array, index: Array, fresh: Array) -> tuple[Array, Array, Array]:
    """SAGA's direction fresh − memory[index] + mean, and the updated memory and mean."""
    old = memory[index]
    return fresh - old + mean, memory.at[index].set(fresh), mean + (fresh - old) / memory.shape[0]


def saba_step(data: Context, state: State) -> State:
    """SABA: SOBA's three directions, each variance-reduced by SAGA, constant steps."""
    x, y, v = state["x"], state["y"], state["v"]
    key, k_inner, k_outer = data.split(state["key"], 3)
    i = data.randint(k_inner, data.train.shape[0])
    j = data.randint(k_outer, data.val.shape[0])
    fresh = dict(zip(("gy", "hvp", "cross"), grad_hvp_cross_inner(x, y, v, data.train[i])))
    fresh.update(zip(("fx", "fy"), grad_outer_xy(x, y, data.val[j])))
    new, d = {"key": key}, {}
    for name in SABA_MEMORIES:
        index = i if name in ("gy", "hvp", "cross") else j
        d[name], new[f"memory_{name}"], new[f"mean_{name}"] = saga(
            state[f"memory_{name}"], state[f"mean_{name}"], index, fresh[name])
    rho, gamma = STEP_INNER, STEP_INNER / OUTER_RATIO
    new.update(x=x - gamma * (d["cross"] + d["fx"]), y=y - rho * d["gy"], v=v - rho * (d["hvp"] + d["fy"]))
    return new


def amigo_init(data: Context, x: Array, y: Array, key: Array) -> State:
    return {"x": x, "y": y, "v": jnp.zeros_like(y), "key": key}


def amigo_step(data: Context, state: State) -> State:
    """AmIGO: T warm-started SGD steps on y, M SGD steps on ½vᵀHv − vᵀ∇_y f, one outer step."""
    x = state["x"]

    def sgd_y(_, carry):
        y, key = carry
        key, k = data.split(key)
        return y - STEP_INNER * grad_inner_y(x, y, data.draw(k, data.train)), key

    y, key = lax.fori_loop(0, AMIGO_INNER_STEPS, sgd_y, (state["y"], state["key"]))
    key, k_outer, k_cross = data.split(key, 3)
    grad_x_f, grad_y_f = grad_outer_xy(x, y, data.draw(k_outer, data.val))

    def sgd_v(_, carry):
        v, key = carry
        key, k = data.split(key)
        return v - STEP_INNER * (hvp_inner(x, y, v, data.draw(k, data.train)) - grad_y_f), key

    v, key = lax.fori_loop(0, AMIGO_LINEAR_STEPS, sgd_v, (state["v"], key))
    hypergradient = grad_x_f - cross_inner(x, y, v, data.draw(k_cross, data.train))
    return {"x": x - STEP_INNER / OUTER_RATIO * hypergradient, "y": y, "v": v, "key": key}


def esj_init(data: Context, x: Array, y: Array, key: Array) -> State:
    return {"x": x, "y": y, "key": key}


def hash_normal(key: Array, shape: tuple[int, ...]) -> Array:
    """Standard normals by Box-Muller on hashed counters of an integer key (either sampler's
    randint gives one): a handful of numbers per step, nothing next to ESJ's products."""
    count = int(np.prod(shape))
    counters = jnp.arange(count, dtype=jnp.uint32) * jnp.uint32(2) + key.astype(jnp.uint32)
    u1 = (_mix32(counters).astype(jnp.float32) + 1.0) / (2.0**32 + 1.0)
    u2 = _mix32(counters + jnp.uint32(1)).astype(jnp.float32) / 2.0**32
    return (jnp.sqrt(-2.0 * jnp.log(u1)) * jnp.cos(2.0 * jnp.pi * u2)).reshape(shape)


def esj_step(data: Context, state: State) -> State:
    """ESJ: T full-batch gradient steps from y at x and at x + μ u_q (q = 1..Q, one vmapped run),
    δ_q = (y_T(x + μ u_q) − y_T(x)) / μ, d = ∇_x f + (1/Q) Σ_q ⟨δ_q, ∇_y f⟩ u_q on the full
    validation set."""
    x = state["x"]
    key, k_directions = data.split(state["key"])
    directions = hash_normal(data.randint(k_directions, 2**31 - 1), (ESJ_DIRECTIONS, x.shape[0]))
    points = jnp.concatenate([x[None, :], x[None, :] + ESJ_SMOOTHING * directions])
    train, val = data.train.reshape(-1, data.dim), data.val.reshape(-1, data.dim)

    def run(x_: Array) -> Array:
        return lax.fori_loop(0, ESJ_INNER_STEPS, lambda _, y: y - STEP_INNER * grad_inner_y(x_, y, train),
                             state["y"])

    ys = jax.vmap(run)(points)
    y_T, differences = ys[0], (ys[1:] - ys[0]) / ESJ_SMOOTHING
    grad_x_f, grad_y_f = grad_outer_xy(x, y_T, val)
    hypergradient = grad_x_f + (differences @ grad_y_f) @ directions / ESJ_DIRECTIONS
    return {"x": x - STEP_INNER / OUTER_RATIO * hypergradient, "y": y_T, "key": key}


METHODS: dict[str, tuple[Callable, Callable]] = {
    "soba": (soba_init, soba_step), "saba": (saba_init, saba_step), "amigo": (amigo_init, amigo_step),
    "esj": (esj_init, esj_step)}
FULL_BATCH_METHODS = ("esj",)


# -- timing ---------------------------------------------------------------------------------------
def jitted_epoch(context: Context, step: Callable, steps: int = STEPS_PER_EPOCH) -> Callable[[State], State]:
    """`steps` steps as one jitted `lax.scan` (the data are constants of the compiled epoch)."""

    def epoch(state: State) -> State:
        return lax.scan(lambda s, _: (step(context, s), None), state, None, length=steps)[0]

    return jax.jit(epoch)


@dataclass(frozen=True)
class Timing:
    """µs per step of one method: the best and the median epoch, and the compilation time."""

    best_us: float
    median_us: float
    compile_s: float
    epochs: int
    finite: bool


def time_method(name: str, data: LogRegData, seconds: float = 2.0, steps: int | None = None,
                seed: int = 0, sampler: str = "hash") -> Timing:
    """Times epochs of `steps` steps of method `name` for about `seconds` (at least 5 epochs),
    drawing batches with `sampler` (SAMPLERS). Default `steps`: 128, 4 for a full-batch method."""
    if steps is None:
        steps = FULL_BATCH_STEPS_PER_EPOCH if name in FULL_BATCH_METHODS else STEPS_PER_EPOCH
    init, step = METHODS[name]
    make_key, split, randint = SAMPLERS[sampler]
    context = Context(jnp.asarray(data.train), jnp.asarray(data.val), split, randint)
    epoch = jitted_epoch(context, step, steps)
    state = init(context, jnp.zeros(data.dim, jnp.float32), jnp.zeros(data.dim, jnp.float32), make_key(seed))
    start = time.perf_counter()
    state = jax.block_until_ready(epoch(state))  # compiles
    compile_s = time.perf_counter() - start
    per_step, deadline = [], time.perf_counter() + seconds
    while len(per_step) < 5 or time.perf_counter() < deadline:
        start = time.perf_counter()
        state = jax.block_until_ready(epoch(state))
        per_step.append((time.perf_counter() - start) / steps * 1e6)
    finite = bool(all(jnp.all(jnp.isfinite(state[k])) for k in ("x", "y", "v") if k in state))
    return Timing(best_us=min(per_step), median_us=float(np.median(per_step)), compile_s=compile_s,
                  epochs=len(per_step), finite=finite)


def main() -> None:
    data = logreg_data()
    print(f"jax {jax.__version__}, XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}, "
          f"train blocks {data.train.shape}, validation blocks {data.val.shape}")
    for sampler in SAMPLERS:
        for name in METHODS:
            timing = time_method(name, data, sampler=sampler)
            print(f"{name:6s} {sampler:8s} best {timing.best_us:8.1f} µs/step  median {timing.median_us:8.1f}  "
                  f"compile {timing.compile_s:5.2f} s  epochs {timing.epochs}  finite {timing.finite}")


if __name__ == "__main__":
    main()
