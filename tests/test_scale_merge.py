"""Merging 20 overlapping bundles (the same runs published from several machines' bundles)
keeps every run once, with its rows from the first bundle that has it."""
from __future__ import annotations

import numpy as np
import pandas as pd

from benchopt_bilevel import publishing
from benchopt_bilevel.runner import Cell, RunConfig, run_cell

N_RUNS, N_BUNDLES = 60, 20


def test_merging_20_overlapping_bundles_keeps_each_run_once(tmp_path):
    template = run_cell(Cell("quadratic", "soba", {"n_inner": 32, "n_outer": 32, "dim_x": 3, "dim_y": 3,
                                                   "batch_size": 8}, {}, seed=0),
                        RunConfig(max_steps=20, n_evals=5, dtype="float64"))
    runs = pd.concat([template.assign(run_id=f"run-{i:03d}", seed=i) for i in range(N_RUNS)], ignore_index=True)
    generator = np.random.default_rng(0)
    bundles = []
    for index in range(N_BUNDLES):
        chosen = [f"run-{i:03d}" for i in generator.choice(N_RUNS, size=15, replace=False)]
        # A bundle's copy of a run is marked with its bundle, to see which copy was kept.
        rows = runs[runs["run_id"].isin(chosen)].assign(hostname=f"bundle-{index}")
        publishing.write_bundle(rows, tmp_path / f"bundle-{index}")
        bundles.append((tmp_path / f"bundle-{index}", set(chosen)))

    merged = publishing.merge_sources([path for path, _ in bundles])

    published = set().union(*(chosen for _, chosen in bundles))
    assert sum(len(chosen) for _, chosen in bundles) > len(published)  # the bundles do overlap
    assert set(merged["run_id"]) == published
    assert len(merged) == len(published) * len(template)  # every run's rows, once
    assert not merged.duplicated(["run_id", "step"]).any()
    first = {run: next(f"bundle-{i}" for i, (_, chosen) in enumerate(bundles) if run in chosen) for run in published}
    kept = merged.groupby("run_id")["hostname"].agg(set)
    assert all(kept[run] == {first[run]} for run in published)
    assert publishing.bundle([path for path, _ in bundles], tmp_path / "all")["runs"] == len(published)
