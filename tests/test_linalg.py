"""Linear solvers: one signature, convergence to the exact solution, warm start, fixed cost;
CG's options (negative-curvature guard, early exit); the stochastic Neumann estimates."""
from __future__ import annotations

import pytest
import torch

from benchopt_bilevel import rng
from benchopt_bilevel.linalg import (SOLVERS, conjugate_gradient, fixed_point, get_linear_solver, lanczos, neumann,
                                     random_neumann_product, repeat, stochastic_neumann, subspace)

# Every solver with the common signature, registered for the AID family or not.
SOLVE = {**SOLVERS, "lanczos": lanczos, "subspace": subspace}


def _system(d=30, mu=0.5, L=2.0, seed=0):
    gen = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(d, d, generator=gen, dtype=torch.float64))
    A = (q * torch.linspace(mu, L, d, dtype=torch.float64)) @ q.T
    b = torch.randn(d, generator=gen, dtype=torch.float64)
    return A, b, torch.linalg.solve(A, b)


def _counted(A):
    calls = []

    def matvec(v):
        calls.append(1)
        return A @ v

    return matvec, calls


@pytest.mark.parametrize("name", sorted(SOLVE))
def test_converges_to_exact_solution(name):
    A, b, exact = _system()
    options = {} if name == "cg" else {"step": 1.0 / 2.0}
    v = SOLVE[name](lambda w: A @ w, b, maxiter=200, **options)
    torch.testing.assert_close(v, exact, rtol=1e-8, atol=1e-8)


def test_cg_is_exact_in_dimension_steps():
    A, b, exact = _system(d=12)
    torch.testing.assert_close(conjugate_gradient(lambda w: A @ w, b, maxiter=12), exact)


def test_neumann_rate_is_geometric():
    A, b, exact = _system(mu=0.5, L=2.0)
    step = 0.5  # contraction 1 - step * mu = 0.75
    errors = [torch.linalg.vector_norm(neumann(lambda w: A @ w, b, maxiter=k, step=step) - exact)
              for k in (10, 20, 30)]
    assert errors[1] / errors[0] == pytest.approx(0.75 ** 10, rel=0.5)
    assert errors[2] < errors[1] < errors[0]


def test_fixed_point_from_zero_equals_neumann():
    A, b, _ = _system()
    torch.testing.assert_close(fixed_point(lambda w: A @ w, b, maxiter=8, step=0.4),
                               neumann(lambda w: A @ w, b, maxiter=7, step=0.4))


def test_warm_start_helps_and_costs_one_residual():
    A, b, exact = _system(mu=0.01, L=2.0)
    matvec, calls = _counted(A)
    cold = conjugate_gradient(matvec, b, maxiter=5)
    assert len(calls) == 5
    calls.clear()
    warm = conjugate_gradient(matvec, b, v0=exact + 1e-6, maxiter=5)
    assert len(calls) == 6
    assert torch.linalg.vector_norm(warm - exact) < torch.linalg.vector_norm(cold - exact)


@pytest.mark.parametrize("name", sorted(SOLVE))
def test_tolerance_freezes_without_changing_the_cost(name):
    A, b, exact = _system()
    matvec, calls = _counted(A)
    options = {} if name == "cg" else {"step": 0.5}
    v = SOLVE[name](matvec, b, maxiter=300, tol=1e-30 if name == "neumann" else 1e-6, **options)
    assert len(calls) == 300  # no early exit: a fixed cost compiles and counts
    assert torch.isfinite(v).all()
    assert torch.linalg.vector_norm(v - exact) < 1e-4


def test_unknown_linear_solver():
    with pytest.raises(ValueError, match="unknown linear solver"):
        get_linear_solver("gmres")
    assert set(SOLVERS) == {"cg", "neumann", "fixed_point"}


# -- conjugate gradient's options ---------------------------------------------------------------
def _indefinite(d=12, seed=0):
    """A symmetric matrix with eigenvalues in [−1, 2] and a right-hand side."""
    gen = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(d, d, generator=gen, dtype=torch.float64))
    return (q * torch.linspace(-1.0, 2.0, d, dtype=torch.float64)) @ q.T, torch.randn(d, generator=gen, dtype=torch.float64)


def test_negative_curvature_guard_freezes_at_the_first_nonpositive_direction():
    A, b = _indefinite()
    matvec, calls = _counted(A)
    iterates = [conjugate_gradient(matvec, b, maxiter=k, stop_at_negative_curvature=True) for k in range(1, 13)]
    assert len(calls) == sum(range(1, 13))  # fixed cost even once frozen
    assert all(torch.isfinite(v).all() for v in iterates)
    frozen = [k for k in range(1, 12) if torch.equal(iterates[k], iterates[k - 1])]
    assert frozen, "some direction of this indefinite system has non-positive curvature"
    assert all(torch.equal(iterates[-1], iterates[k]) for k in frozen)  # frozen for good
    # Without the guard CG keeps stepping along such directions.
    assert not torch.equal(conjugate_gradient(lambda w: A @ w, b, maxiter=12), iterates[-1])


def test_negative_curvature_guard_changes_nothing_on_a_positive_definite_system():
    A, b, _ = _system()
    torch.testing.assert_close(conjugate_gradient(lambda w: A @ w, b, maxiter=7, stop_at_negative_curvature=True),
                               conjugate_gradient(lambda w: A @ w, b, maxiter=7), rtol=0, atol=0)


@pytest.mark.parametrize("tol, atol", [(1e-6, 0.0), (1e-3, 1e-3)])
def test_early_exit_gives_the_masked_iterate_with_fewer_matvecs(tol, atol):
    A, b, exact = _system(mu=0.1, L=2.0)
    b = 100 * b  # ‖b‖ > 1: tol·‖b‖ and atol differ
    matvec, calls = _counted(A)
    masked = conjugate_gradient(matvec, b, maxiter=200, tol=tol, atol=atol)
    calls.clear()
    early = conjugate_gradient(matvec, b, maxiter=200, tol=tol, atol=atol, early_exit=True)
    assert 0 < len(calls) < 200
    torch.testing.assert_close(early, masked, rtol=0, atol=0)
    residual = float(torch.linalg.vector_norm(A @ early - b))
    assert residual <= max(tol * float(torch.linalg.vector_norm(b)), atol) * (1 + 1e-9)


def test_atol_is_a_floor_on_the_tolerance():
    A, b, _ = _system()
    b = 1e-3 * b  # tol·‖b‖ far below atol
    v = conjugate_gradient(lambda w: A @ w, b, maxiter=100, tol=1e-3, atol=1e-4)
    residual = float(torch.linalg.vector_norm(A @ v - b))
    assert 1e-9 < residual <= 1e-4


# -- stochastic Neumann estimates ---------------------------------------------------------------
def _sampled(matrices, calls=None):
    """(ws, key) ↦ [A_B w], B drawn from key among `matrices`; one draw per call, shared by ws."""
    def matvec(ws, key):
        if calls is not None:
            calls.append(len(ws))
        A = matrices[int(rng.randint(key, len(matrices)))]
        return [A @ w for w in ws]

    return matvec


def test_stochastic_neumann_with_one_matrix_is_the_neumann_series():
    A, b, _ = _system(mu=0.5, L=2.0)
    (v,), key = stochastic_neumann(_sampled([A]), [b], key=rng.make_key(0), maxiter=9, step=0.3)
    torch.testing.assert_close(v, neumann(lambda w: A @ w, b, maxiter=9, step=0.3))
    assert not torch.equal(key, rng.make_key(0))


def test_stochastic_neumann_shares_batches_across_points_and_draws_one_per_term():
    matrices = [_system(seed=s)[0] for s in range(4)]
    b = _system()[1]
    calls = []
    (v1, v2), _ = stochastic_neumann(_sampled(matrices, calls), [b, 2 * b], key=rng.make_key(1), maxiter=6, step=0.2)
    assert calls == [2] * 6
    torch.testing.assert_close(v2, 2 * v1)  # the same batches at both points: linear in b
    (w1,), _ = stochastic_neumann(_sampled(matrices), [b], key=rng.make_key(2), maxiter=6, step=0.2)
    assert not torch.allclose(w1, v1)  # another key, other batches


def test_random_neumann_product_is_an_unbiased_estimate_of_the_sum():
    A, b, _ = _system(d=6, mu=0.5, L=2.0)
    n_terms, step = 5, 0.3
    estimates = []
    for seed in range(4000):
        (v,), _ = random_neumann_product(_sampled([A]), [b], key=rng.make_key(seed), n_terms=n_terms, step=step)
        estimates.append(v)
    mean = torch.stack(estimates).mean(0)
    expected = neumann(lambda w: A @ w, b, maxiter=n_terms - 1, step=step)  # Q terms: k = 0 … Q−1
    assert float(torch.linalg.vector_norm(mean - expected) / torch.linalg.vector_norm(expected)) < 0.05
    assert float(torch.stack(estimates).std(0).max()) > 0.1  # a random estimate, not the sum itself


def _drawn_length(key, n_terms):
    """The length p the product draws from `key` (its first split)."""
    _, k_length = rng.split(key)
    return int(rng.randint(k_length, n_terms))


def test_random_neumann_product_computes_only_the_drawn_products():
    """p matvecs (not Q−1 masked ones), (Q−1)/2 on average, and the estimate is Q η Π_{j≤p}(I − η A) b."""
    A, b, _ = _system()
    n_terms, step, lengths = 7, 0.1, []
    for seed in range(300):
        key, calls = rng.make_key(seed), []
        (v, w), _ = random_neumann_product(_sampled([A], calls), [b, 2 * b], key=key, n_terms=n_terms, step=step)
        length = _drawn_length(key, n_terms)
        assert calls == [2] * length  # both points share every matvec call
        expected = b
        for _ in range(length):
            expected = expected - step * (A @ expected)
        torch.testing.assert_close(v, n_terms * step * expected)
        torch.testing.assert_close(w, 2 * v)
        lengths.append(length)
    assert set(lengths) == set(range(n_terms))  # every length 0 … Q−1 occurs
    assert abs(sum(lengths) / len(lengths) - (n_terms - 1) / 2) < 0.3  # sd of the mean: 0.12
    (v,), _ = random_neumann_product(_sampled([A]), [b], key=rng.make_key(0), n_terms=1, step=0.1)
    torch.testing.assert_close(v, 0.1 * b)


def test_random_neumann_product_compiles_to_one_graph_with_a_data_dependent_length():
    """Under torch.compile(fullgraph=True) the loop is torch's while_loop: one graph for every
    drawn length (no recompilation), the eager estimates and keys."""
    import torch._dynamo

    matrices = [_system(d=8, seed=s)[0] for s in range(3)]
    stacked = torch.stack(matrices)

    def matvec(ws, key):  # traceable: index_select, as Problem.block does
        A = torch.index_select(stacked, 0, rng.randint(key, len(matrices)).reshape(1)).squeeze(0)
        return [A @ w for w in ws]

    def estimate(b, key):
        (v,), key = random_neumann_product(matvec, [b], key=key, n_terms=9, step=0.2)
        return v, key

    b = _system(d=8)[1]
    torch._dynamo.reset()
    compiled = torch.compile(estimate, fullgraph=True, backend="aot_eager")
    lengths = set()
    try:
        for seed in range(8):
            key = rng.make_key(seed)
            with torch._dynamo.config.patch(error_on_recompile=seed > 0):
                v, new_key = compiled(b, key)
            v_eager, key_eager = estimate(b, key)
            torch.testing.assert_close(v, v_eager, rtol=1e-12, atol=1e-12)
            assert int(new_key) == int(key_eager)
            lengths.add(_drawn_length(key, 9))
    finally:
        torch._dynamo.reset()
    assert len(lengths) > 2  # several lengths went through the one graph


# -- fixed-count loops as one loop in an exported graph -------------------------------------------
def _exported(fn, *inputs):
    """torch.export of fn(*inputs) (non-strict, as the fast path exports a step)."""

    class Module(torch.nn.Module):
        def forward(self, *args):
            return fn(*args)

    with torch.no_grad():
        return torch.export.export(Module(), inputs, strict=False)


def _while_loops(program) -> int:
    return sum(node.op == "call_function" and "while_loop" in str(node.target)
               for node in program.graph_module.graph.nodes)


def _calls(program, target: str) -> int:
    """Calls of the aten operator `target` (e.g. "mv") in every graph of the program."""
    return sum(f"aten.{target}." in str(node.target)
               for module in program.graph_module.modules() if isinstance(module, torch.fx.GraphModule)
               for node in module.graph.nodes)


@pytest.mark.parametrize("name", sorted(SOLVE))
def test_exported_solvers_are_one_loop_and_give_the_eager_solution(name):
    """maxiter = 12 iterations export as one while_loop whose body holds one matvec (two for the
    Lanczos start and the subspace's first products, outside the loop), with the eager iterate;
    with a tolerance too (CG's freeze is a mask, not a branch on the residual)."""
    A, b, _ = _system(d=8)
    options = {} if name == "cg" else {"step": 0.5}
    for tol in (0.0, 1e-3):
        def solve(b):
            return SOLVE[name](lambda w: torch.mv(A, w), b, maxiter=12, tol=tol, **options)

        program = _exported(solve, b)
        assert _while_loops(program) == 1
        assert _calls(program, "mv") <= 3  # not 12 unrolled products
        torch.testing.assert_close(program.module()(b), solve(b), rtol=0, atol=1e-13)


def test_exported_stochastic_neumann_is_one_loop_with_the_eager_estimate_and_key():
    matrices = torch.stack([_system(d=6, seed=s)[0] for s in range(3)])

    def matvec(ws, key):
        A = torch.index_select(matrices, 0, rng.randint(key, 3).reshape(1)).squeeze(0)
        return [torch.mv(A, w) for w in ws]

    def estimate(b, key):
        (v, w), key = stochastic_neumann(matvec, [b, 2 * b], key=key, maxiter=9, step=0.3)
        return v, w, key

    b, key = _system(d=6)[1], rng.make_key(5)
    program = _exported(estimate, b, key)
    assert _while_loops(program) == 1
    v, w, new_key = program.module()(b, key)
    v_eager, w_eager, key_eager = estimate(b, key)
    torch.testing.assert_close(v, v_eager, rtol=0, atol=1e-13)
    torch.testing.assert_close(w, w_eager, rtol=0, atol=1e-13)
    assert int(new_key) == int(key_eager)


def test_repeat_counts_eager_and_copies_an_input_returned_as_is_when_exported():
    calls = []

    def body(carry):
        calls.append(1)
        a, b = carry
        return a + b, b  # b unchanged: returned as is

    a, b = torch.zeros(3), torch.ones(3)
    assert torch.equal(repeat(5, body, (a, b))[0], torch.full((3,), 5.0))
    assert len(calls) == 5
    assert repeat(0, body, (a, b)) == (a, b)
    program = _exported(lambda a, b: repeat(5, lambda c: (c[0] + c[1], c[1]), (a, b)), a, b)
    assert _while_loops(program) == 1
    assert torch.equal(program.module()(a, b)[0], torch.full((3,), 5.0))


def test_small_solve_matches_solve_and_gives_nan_on_a_singular_system():
    from benchopt_bilevel.linalg import small_solve

    generator = torch.Generator().manual_seed(0)
    A = torch.randn(6, 6, dtype=torch.float64, generator=generator) + 6 * torch.eye(6, dtype=torch.float64)
    b = torch.randn(6, dtype=torch.float64, generator=generator)
    assert torch.allclose(small_solve(A, b), torch.linalg.solve(A, b), atol=1e-14, rtol=0)
    singular = A.clone()
    singular[3] = 0.0
    assert torch.isnan(small_solve(singular, b)).all()
