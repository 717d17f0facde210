"""k solver steps per iteration of the fast path's while_loop: build time and µs per step.

    .venv/bin/python speed/steps_per_iteration.py soba 1,2,4 [repeats]

An experiment, not a path of the engine: the library's loop re-wraps every carry and closed-over
tensor at each iteration (speed/profile_fast_step.py), so k steps per iteration (the later ones
masked once past n, so any n works) amortise that over k steps, at k copies of the step in the
graph. Builds each k (logreg, ijcnn1, float32, one thread), checks that every k gives the k = 1
iterates after 37 steps, then times 128-step calls of all of them interleaved. Measured on SOBA
(docs/fast-vs-jax.md): 7.62, 6.83, 6.00 µs/step for k = 1, 2, 4 and builds of 68, 110, 213 s.
"""
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import torch  # noqa: E402

from benchopt_bilevel import fast, rng  # noqa: E402
from benchopt_bilevel.fixtures import build_problem  # noqa: E402
from benchopt_bilevel.linalg import unaliased  # noqa: E402
from benchopt_bilevel.oracles import Oracles  # noqa: E402
from benchopt_bilevel.registry import get_solver  # noqa: E402


class StepsK(torch.nn.Module):
    def __init__(self, solver, oracles, keys, k):
        super().__init__()
        self.solver, self.oracles, self.keys, self.k = solver, oracles, keys, k

    def forward(self, n, hyperparameters, *values):
        from torch._higher_order_ops.while_loop import while_loop  # noqa: PLC0415
        keys, k = self.keys, self.k

        def body(i, *carry):
            solver = fast.with_tensor_hyperparameters(self.solver, hyperparameters)
            state = dict(zip(keys, carry))
            for j in range(k):
                new = solver.step(self.oracles, state)
                if j > 0:
                    active = i + j < n
                    new = {key: torch.where(active, new[key], state[key]) for key in keys}
                state = new
            return (i + k, *unaliased(tuple(state[key] for key in keys), carry))

        _, *out = while_loop(lambda i, *_: i < n, body, (torch.zeros_like(n), *values))
        return tuple(out)


def main(name, ks, folder, steps=128, repeats=300):
    torch.set_num_threads(1)
    problem = build_problem("logreg", torch.float32, dataset="ijcnn1")
    solver, oracles = get_solver(name)(), Oracles(problem)
    with torch.no_grad():
        state = solver.init(oracles, problem.x0(), problem.y0(), rng.make_key(0))
    state = {k: v.clone() for k, v in state.items()}
    keys = list(state)
    chunks, builds = {}, {}
    for k in ks:
        inputs = (torch.tensor(1), fast.hyperparameter_tensor(solver), *(state[key].clone() for key in keys))
        t0 = time.perf_counter()
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.export.export(StepsK(solver, oracles, keys, k), inputs, strict=False)
        t1 = time.perf_counter()
        path = fast.build_library(program, f"{folder}/{name}_k{k}.pt2")
        t2 = time.perf_counter()
        builds[k] = (t1 - t0, t2 - t1)
        chunks[k] = fast.steps_function(fast.load_library(path), solver, keys)
        print(f"k={k}: export {t1-t0:.1f} s build {t2-t1:.1f} s", flush=True)
    # same iterates? compare k vs first after 37 steps (not a multiple of k)
    ref = chunks[ks[0]](dict(state), 37)
    for k in ks[1:]:
        out = chunks[k](dict(state), 37)
        err = max(float((out[key].double() - ref[key].double()).abs().max()) for key in keys if out[key].is_floating_point())
        same_int = all(torch.equal(out[key], ref[key]) for key in keys if not out[key].is_floating_point())
        print(f"k={k}: max diff after 37 steps {err:.2e}, ints equal {same_int}")
    states = {k: c(dict(state), steps) for k, c in chunks.items()}
    best = dict.fromkeys(ks, float("inf"))
    for _ in range(repeats):
        for k, c in chunks.items():
            t = time.perf_counter(); states[k] = c(states[k], steps)
            best[k] = min(best[k], (time.perf_counter() - t) / steps * 1e6)
    for k in ks:
        print(f"{name} k={k}: {best[k]:.2f} µs/step  (export {builds[k][0]:.1f} s, build {builds[k][1]:.1f} s)")


if __name__ == "__main__":
    import tempfile
    with tempfile.TemporaryDirectory() as directory:
        main(sys.argv[1], [int(a) for a in sys.argv[2].split(",")], directory,
             repeats=int(sys.argv[3]) if len(sys.argv) > 3 else 300)
