"""The static leaderboard page, checked as a parsed DOM (the browser test checks it in Chromium)."""
from __future__ import annotations

import math
from html.parser import HTMLParser

import pandas as pd
import pytest
import torch
from conftest import WELL_CONDITIONED

from benchopt_bilevel import scoring, site, tuning
from benchopt_bilevel.errors import UserError
from benchopt_bilevel.publishing import bundle
from benchopt_bilevel.registry import get_solver
from benchopt_bilevel.results import load_results, write_run
from benchopt_bilevel.runner import Cell, RunConfig, run_cell

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}
PROBLEMS = [dict(WELL_CONDITIONED), {**WELL_CONDITIONED, "dim_x": 4}]


class Node:
    def __init__(self, tag, attrs, parent=None):
        self.tag, self.attrs, self.parent, self.children, self.text = tag, dict(attrs), parent, [], ""

    def iter(self):
        yield self
        for child in self.children:
            yield from child.iter()

    def find_all(self, tag, **attrs):
        return [n for n in self.iter() if n.tag == tag and all(
            attrs_value in (n.attrs.get(k.rstrip("_")) or "").split() if k == "class_" else n.attrs.get(k) == attrs_value
            for k, attrs_value in attrs.items())]

    def all_text(self):
        return self.text + "".join(c.all_text() for c in self.children)


class TreeBuilder(HTMLParser):
    """A minimal DOM: enough to walk sections, tables and rows of the generated page."""

    def __init__(self):
        super().__init__()
        self.root = self.current = Node("#document", {})

    def handle_starttag(self, tag, attrs):
        node = Node(tag, attrs, self.current)
        self.current.children.append(node)
        if tag not in VOID:
            self.current = node

    def handle_endtag(self, tag):
        node = self.current
        while node is not None and node.tag != tag:
            node = node.parent
        if node is not None and node.parent is not None:
            self.current = node.parent

    def handle_data(self, data):
        self.current.text += data


def parse(path):
    builder = TreeBuilder()
    builder.feed(path.read_text(encoding="utf-8"))
    return builder.root


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    """Real runs (2 problem instances x soba, saba x 2 seeds), a tuning artefact, and a second device class."""
    base = tmp_path_factory.mktemp("site")
    results = base / "results"
    config = RunConfig(max_time=10.0, max_steps=30, n_evals=4, dtype="float64")
    for problem in PROBLEMS:
        for solver in ("soba", "saba"):
            for seed in (0, 1):
                run_cell(Cell("quadratic", solver, problem, {}, seed), config, results)
    spec = "quadratic[" + ",".join(f"{k}={v}" for k, v in WELL_CONDITIONED.items()) + "]"
    plan = tuning.TuningPlan(problem=spec, solvers=["aid-cg"], n_trials=2, tuning_seeds=[0], fresh_seeds=[5],
                             run=config, label="site test")
    tuning.write_artefact(tuning.tune(plan, results), results / "tuning-site-test.yaml")
    # The same rows relabelled as another device class: the page must give it its own tab. (This tests
    # rendering only; real GPU rows come from `run --device cuda`.)
    gpu = base / "gpu"
    table = load_results(results)
    table = table.assign(device="cuda", device_name="Test GPU", time=table["time"] / 3)
    for run_id, rows in table.groupby("run_id"):
        write_run(rows, gpu, run_id)
    site_dir = base / "out"
    bundle([results, gpu], site_dir / "bundle", tuning.find_artefacts(results))
    index = site.publish(site_dir / "bundle", site_dir, title="Test leaderboard")
    entries = scoring.summary(scoring.run_table(pd.concat([load_results(results), table], ignore_index=True)))
    return index, parse(index), entries


def test_every_device_problem_and_solver_has_its_table_and_row(published):
    _, dom, entries = published
    sections = dom.find_all("section", class_="device")
    assert {s.attrs["data-device"] for s in sections} == set(entries["device_class"])
    tabs = dom.find_all("button", role="tab")
    assert len(tabs) == len(sections) == 2
    assert [t.attrs["aria-selected"] for t in tabs] == ["true", "false"]
    assert ["hidden" in s.attrs for s in sections] == [False, True]
    assert sections[0].attrs["data-device"].startswith("cpu: ")  # CPU first
    for section in sections:
        device_entries = entries[entries["device_class"] == section.attrs["data-device"]]
        tables = section.find_all("table", class_="leaderboard")
        assert sorted(t.attrs["data-problem"] for t in tables) == sorted(device_entries["problem_label"].unique())
        for table in tables:
            expected = device_entries[device_entries["problem_label"] == table.attrs["data-problem"]]
            rows = [r for r in table.find_all("tr") if "data-solver" in r.attrs]
            assert sorted(r.attrs["data-solver"] for r in rows) == sorted(expected["solver_label"])
            assert [int(r.find_all("td")[0].attrs["data-value"]) for r in rows] == list(range(1, len(rows) + 1))
            headers = [th.attrs["data-key"] for th in table.find_all("th")]
            assert headers == ["rank", "solver", "time", "ratio", "final", "reached", "status", "oracle", "memory"]
            for row in rows:
                cells = row.find_all("td")
                entry = expected.set_index("solver_label").loc[row.attrs["data-solver"]]
                time = float(cells[2].attrs["data-value"])
                assert time == entry["time_median"] or (math.isinf(time) and math.isinf(entry["time_median"]))
                assert "∞" in cells[2].all_text() if math.isinf(time) else "∞" not in cells[2].all_text()
                assert "[" in cells[2].all_text()  # the 20–80% band
                assert cells[5].all_text() == f"{int(entry['n_reached'])}/{int(entry['n_runs'])}"
                assert "ok" in cells[6].all_text()
                assert cells[8].all_text() not in ("", "–")  # peak memory


def test_plots_and_profiles_are_inline_svg(published):
    _, dom, _ = published
    for problem in dom.find_all("section", class_="problem"):
        figures = problem.find_all("figure", class_="convergence")
        assert [f.attrs["data-axis"] for f in figures] == ["time", "oracle"]
        for figure in figures:
            svg = figure.find_all("svg")
            assert svg and len(svg[0].find_all("path")) > 3  # median lines and bands, not an empty frame
            assert "no evaluation to plot" not in figure.all_text()
    profiles = dom.find_all("figure", class_="profile")
    assert len(profiles) == 2 and all(p.find_all("svg") for p in profiles)
    scores = dom.find_all("table", class_="scores-table")
    assert len(scores) == 2 and all(len([r for r in t.find_all("tr") if "data-solver" in r.attrs]) == 3 for t in scores)


def test_page_works_offline(published):
    index, dom, _ = published
    for node in dom.iter():
        for name in ("src", "href", "xlink:href"):
            value = node.attrs.get(name)
            assert value is None or value.startswith("#") or "://" not in value, (node.tag, value)
    assert not dom.find_all("link") and all("src" not in s.attrs for s in dom.find_all("script"))
    text = index.read_text()
    assert "@import" not in text and "url(http" not in text
    assert dom.find_all("a", href="bundle/manifest.json")  # the data behind the page, next to it


def test_provenance_and_tuning_panels(published):
    _, dom, entries = published
    (provenance,) = [s for s in dom.find_all("section") if s.attrs.get("id") == "provenance"]
    text = provenance.all_text()
    assert torch.__version__ in text and "git revision" in text and "Test GPU" in text
    panels = dom.find_all("details", class_="tuning")
    assert len(panels) == 2  # aid-cg tuned on the first problem, on each device class
    panel_text = panels[0].all_text()
    assert "site test" in panel_text and "2 quasi-random trials" in panel_text and "median time-to-target" in panel_text
    space = {row.find_all("td")[0].all_text() for row in panels[0].find_all("tr") if row.find_all("td")}
    assert space == set(get_solver("aid-cg").search_space)
    badges = dom.find_all("a", class_="badge")
    ids = {n.attrs.get("id") for n in dom.iter()}
    assert len(badges) == 2 and all(b.attrs["href"][1:] in ids for b in badges)
    # soba and saba ran with their papers' parameters: 2 problems x 2 solvers x 2 device classes
    defaults = dom.find_all("span", class_="default")
    assert len(defaults) == 8 and all(b.all_text() == "default" for b in defaults)


def test_render_refuses_empty_results(tmp_path):
    with pytest.raises(UserError, match="no results"):
        site.render_site(pd.DataFrame(), tmp_path)


def test_large_site_gets_a_page_per_problem(published, tmp_path):
    """Past max_page_bytes of plots, each problem's plots go to its own page; the index keeps the
    scores, profiles and every table, and links to each page; every page works offline."""
    from benchopt_bilevel.publishing import bundle_tuning_files, load_bundle

    index_path, _, entries = published
    source = index_path.parent / "bundle"
    index = site.render_site(load_bundle(source), tmp_path, max_page_bytes=0,
                             tuning=[tuning.read_artefact(path) for path in bundle_tuning_files(source)])
    dom = parse(index)
    assert not dom.find_all("figure", class_="convergence") and len(dom.find_all("figure", class_="profile")) == 2
    problems = dom.find_all("section", class_="problem")
    assert len(problems) == len(entries.groupby(["device_class", "problem_label"]))
    for problem in problems:
        (table,) = problem.find_all("table", class_="leaderboard")
        (link,) = problem.find_all("a", class_="plots-link")
        page_path = tmp_path / link.attrs["href"]
        page = parse(page_path)
        (own,) = page.find_all("section", class_="problem")
        assert own.attrs["data-problem"] == problem.attrs["data-problem"]
        assert [t.attrs["id"] for t in own.find_all("table", class_="leaderboard")] == [table.attrs["id"]]
        figures = own.find_all("figure", class_="convergence")
        assert [f.attrs["data-axis"] for f in figures] == ["time", "oracle"]
        assert all(len(f.find_all("svg")[0].find_all("path")) > 3 for f in figures)
        for node in page.iter():
            for name in ("src", "href", "xlink:href"):
                value = node.attrs.get(name)
                assert value is None or "://" not in value, (node.tag, value)
        assert not page.find_all("link") and all("src" not in s.attrs for s in page.find_all("script"))
        assert page.find_all("a", href="index.html")
    # tuning panels and their badges stay on the index (and on the problem's page)
    assert len(dom.find_all("details", class_="tuning")) == 2 and len(dom.find_all("a", class_="badge")) == 2
    # published again as one page into the same folder: no problem page of the earlier layout is left
    site.render_site(load_bundle(source), tmp_path)
    assert not list(tmp_path.glob("problem-*.html"))


def test_a_ranking_that_mixes_step_paths_says_so(published, tmp_path):
    """One path per problem: no note, no path badge. SABA's rows relabelled as fast: every problem
    gets the note naming both groups, and each of its rows a badge with its own path."""
    from benchopt_bilevel.publishing import load_bundle

    index_path, dom, _ = published
    assert not dom.find_all("p", class_="paths") and not dom.find_all("span", class_="path")
    rows = load_bundle(index_path.parent / "bundle")
    rows["path"] = rows["solver"].map({"saba": "fast"}).fillna("eager")
    mixed = parse(site.render_site(rows, tmp_path))
    problems = mixed.find_all("section", class_="problem")
    assert problems
    for problem in problems:
        (note,) = problem.find_all("p", class_="paths")
        assert "eager: soba" in note.all_text() and "fast: saba" in note.all_text()
        for row in problem.find_all("tr", class_="entry"):
            (badge,) = row.find_all("span", class_="path")
            assert badge.all_text() == ("fast" if row.attrs["data-solver"].startswith("saba") else "eager")


def hand_made_track(problems=("quadratic", "logreg")) -> pd.DataFrame:
    """Measurements shaped like the hypergradient track's: two estimators, two budgets, two points."""
    rows = [("aid-cg", 1, 4, 1e-1), ("aid-cg", 8, 32, 1e-5), ("jfb", float("nan"), 2, 3e-1)]
    return pd.DataFrame([{"problem": p, "x_point": x, "y_point": "y*(x)", "estimator": e, "solver": e, "budget": b,
                          "oracle_calls": c, "relative_error": r, "step_time": c * 1e-5, "seed": 0}
                         for p in problems for x in ("x0", "near x*") for e, b, c, r in rows])


def test_hypergradients_page_travels_in_the_bundle_and_is_linked(published, tmp_path):
    """A results folder with the hypergradient track: the bundle carries its measurements, the index links
    to hypergradients.html, which has per problem both Pareto plots and the cheapest-estimator table."""
    from benchopt_bilevel.publishing import load_bundle

    index_path, _, _ = published
    results = tmp_path / "results"
    for run_id, rows in load_bundle(index_path.parent / "bundle").groupby("run_id"):
        write_run(rows, results, run_id)
    (results / "hypergradients").mkdir()
    hand_made_track().to_parquet(results / "hypergradients" / "sweep.parquet")
    manifest = bundle([results], tmp_path / "site" / "bundle")
    assert [f["rows"] for f in manifest["files"] if f["kind"] == "hypergradients"] == [12]
    index = site.publish(tmp_path / "site" / "bundle", tmp_path / "site")
    (link,) = [a for a in parse(index).find_all("a") if a.attrs.get("id") == "hypergradients-link"]
    assert link.attrs["href"] == "hypergradients.html"
    page = parse(tmp_path / "site" / "hypergradients.html")
    sections = page.find_all("section", class_="problem")
    assert [s.attrs["data-problem"] for s in sections] == ["quadratic", "logreg"]
    for section in sections:
        assert [f.attrs["data-cost"] for f in section.find_all("figure")] == ["oracle_calls", "step_time"]
        assert len(section.find_all("svg")) == 2
        cells = [[td.text for td in tr.find_all("td")] for tr in section.find_all("tr") if tr.find_all("td")]
        # aid-cg with 8 iterations is the only estimator reaching 1e-2 and 1e-4, at both points
        assert [c[3] for c in cells] == ["aid-cg = 8"] * 4 and [c[4] for c in cells] == ["32"] * 4


def test_hypergradients_page_goes_when_the_track_goes(published, tmp_path):
    index_path, _, _ = published
    (tmp_path / "hypergradients.html").write_text("stale")
    index = site.publish(index_path.parent / "bundle", tmp_path)
    assert not (tmp_path / "hypergradients.html").exists()
    assert not [a for a in parse(index).find_all("a") if a.attrs.get("id") == "hypergradients-link"]
