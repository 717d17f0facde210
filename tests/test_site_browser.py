"""The published leaderboard in a real browser: headless Chromium loads the page from a file:// URL.

The site is made the way a user makes it: `run` (the default benchmark's solvers, on a small
quadratic), `tune` (two solvers), then `publish`. Chromium checks it twice:
- `--dump-dom`: the DOM after the page's script ran (every problem has its table, every solver a row);
- the DevTools protocol over a websocket (websocket-client): real mouse clicks on table headers
  sort the rows, the device tabs switch, the plots are laid out, and a full-page screenshot is
  taken (kept in tests/artifacts/leaderboard.png, a git-ignored path, when
  BENCHOPT_BILEVEL_KEEP_SCREENSHOT=1, as `make test` and so CI set it; elsewhere in a temporary
  folder).

Chromium comes from the Debian package `chromium` (scripts/system-deps.sh). When it is missing, the
test installs it as root, fails in CI (CI set), and skips with the reason elsewhere.
"""
from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import WELL_CONDITIONED

from benchopt_bilevel import scoring
from benchopt_bilevel.benchmark import DEFAULT_SOLVERS
from benchopt_bilevel.cli import main
from benchopt_bilevel.publishing import load_bundle
from benchopt_bilevel.results import write_run

REPO = Path(__file__).resolve().parents[1]
SCREENSHOT = Path(__file__).resolve().parent / "artifacts" / "leaderboard.png"
KEEP_SCREENSHOT = os.environ.get("BENCHOPT_BILEVEL_KEEP_SCREENSHOT") == "1"
PROBLEM = "quadratic[" + ",".join(f"{k}={v}" for k, v in WELL_CONDITIONED.items()) + "]"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
         "--disable-extensions", "--disable-dev-shm-usage", "--hide-scrollbars", "--window-size=1280,1600"]
TIMEOUT = 30.0


def _missing(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (required in CI)")
    pytest.skip(reason)


def _find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    return None


@pytest.fixture(scope="module")
def chromium() -> str:
    binary = _find_chromium()
    if binary is None and hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("apt-get"):
        subprocess.run(["bash", str(REPO / "scripts" / "system-deps.sh")], check=False, timeout=900)
        binary = _find_chromium()
        if binary is None:
            pytest.fail("Chromium is not installed and scripts/system-deps.sh could not install the Debian package "
                        "`chromium` (see /tmp/benchopt-bilevel-apt.log)")
    if binary is None:
        _missing("Chromium is not installed and this is not root: install the Debian package `chromium` "
                 "(as root: make system-deps)")
    return binary


@pytest.fixture(scope="module")
def websocket_module():
    try:
        import websocket
    except ImportError:
        _missing("the browser test needs websocket-client (pip install -e '.[test]')")
    return websocket


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """run (default solvers, 2 seeds) -> tune (soba, saba) -> publish; returns (index.html, bundle rows)."""
    base = tmp_path_factory.mktemp("browser")
    results = base / "results"
    runner = CliRunner()
    common = ["--max-steps", "100", "--n-evals", "8", "--dtype", "float64"]
    out = runner.invoke(main, ["run", "-p", PROBLEM, "--seeds", "0,1", *common, "-o", str(results)])
    assert out.exit_code == 0, out.output
    out = runner.invoke(main, ["tune", "--problem", PROBLEM, "--solver", "soba", "--solver", "saba", "--n-trials", "3",
                               "--tuning-seeds", "0", "--fresh-seeds", "100,101", *common, "--label", "browser-test", "--path", "eager",
                               "--output-dir", str(results)])
    assert out.exit_code == 0, out.output
    out = runner.invoke(main, ["publish", str(results), "--site", str(base / "site"), "--title", "Leaderboard (test)"])
    assert out.exit_code == 0, out.output
    index = base / "site" / "index.html"
    return index, load_bundle(base / "site" / "bundle")


@pytest.fixture(scope="module")
def two_device_site(site, tmp_path_factory):
    """The same rows plus a relabelled copy as a second device class, to exercise the device tabs."""
    _, rows = site
    base = tmp_path_factory.mktemp("tabs")
    for device, name in (("cpu", None), ("cuda", "Test GPU")):
        copy = rows if name is None else rows.assign(device=device, device_name=name)
        for run_id, run in copy.groupby("run_id"):
            write_run(run, base / device, run_id)
    out = CliRunner().invoke(main, ["publish", str(base / "cpu"), str(base / "cuda"), "--site", str(base / "site")])
    assert out.exit_code == 0, out.output
    return base / "site" / "index.html"


# -- a small DevTools protocol client -----------------------------------------------------------
class Browser:
    """Headless Chromium with one page, driven over the DevTools protocol."""

    def __init__(self, binary: str, websocket, profile: Path, url: str):
        profile.mkdir(parents=True)
        self.log = profile.parent / f"{profile.name}.log"  # a file, not a pipe: chromium never blocks on it
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen([binary, *FLAGS, f"--user-data-dir={profile}",
                                             "--remote-debugging-port=0", url], stdout=log, stderr=log)
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + TIMEOUT
        while not (port_file.is_file() and port_file.read_text().strip()):
            if self.process.poll() is not None:
                raise RuntimeError(f"chromium exited: {self.log.read_text(errors='replace')[-2000:]}")
            if time.monotonic() > deadline:
                raise TimeoutError("chromium did not open its DevTools port")
            time.sleep(0.05)
        port = int(port_file.read_text().split()[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=TIMEOUT) as response:
            pages = [t for t in json.load(response) if t["type"] == "page"]
        self.socket = websocket.create_connection(pages[0]["webSocketDebuggerUrl"], timeout=TIMEOUT,
                                                  suppress_origin=True)
        self.next_id = 0

    def send(self, method: str, **params):
        self.next_id += 1
        self.socket.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:  # events arrive in between; keep the answer to this call
            message = json.loads(self.socket.recv())
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message["result"]

    def eval(self, expression: str):
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_ready(self) -> None:
        deadline = time.monotonic() + TIMEOUT
        while self.eval("document.readyState === 'complete' && document.body.dataset.ready === 'true'") is not True:
            if time.monotonic() > deadline:
                raise TimeoutError("the page did not finish loading")
            time.sleep(0.05)

    def click(self, selector: str) -> None:
        """A real mouse click (pressed and released) at the centre of the element."""
        box = self.eval(f"""(() => {{ const e = document.querySelector({json.dumps(selector)});
            e.scrollIntoView({{block: 'center'}}); const r = e.getBoundingClientRect();
            return [r.x + r.width / 2, r.y + r.height / 2]; }})()""")
        for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
            self.send("Input.dispatchMouseEvent", type=kind, x=box[0], y=box[1], button="left", clickCount=1)

    def screenshot(self, path: Path, max_height: int = 6000) -> None:
        self.eval("window.scrollTo(0, 0)")
        size = self.send("Page.getLayoutMetrics")["cssContentSize"]
        height = min(int(size["height"]) + 1, max_height)
        self.send("Emulation.setDeviceMetricsOverride", width=1280, height=height, deviceScaleFactor=1, mobile=False)
        shot = self.send("Page.captureScreenshot", format="png", captureBeyondViewport=True,
                         clip={"x": 0, "y": 0, "width": 1280, "height": height, "scale": 1})
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(shot["data"]))

    def close(self) -> None:
        try:
            self.send("Browser.close")
        except Exception:  # noqa: BLE001 - the browser may close the socket first
            pass
        self.socket.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def browser(chromium, websocket_module, tmp_path):
    opened = []

    def open_page(index: Path) -> Browser:
        page = Browser(chromium, websocket_module, tmp_path / f"profile-{len(opened)}", index.as_uri())
        opened.append(page)
        page.wait_ready()
        return page

    yield open_page
    for page in opened:
        page.close()


def rows_of(page: Browser, table_id: str, attribute: str = "data-solver") -> list:
    return page.eval(f"Array.from(document.getElementById({json.dumps(table_id)}).tBodies[0].rows)"
                     f".map(r => r.getAttribute({json.dumps(attribute)}))")


def column_of(page: Browser, table_id: str, key: str) -> list:
    return page.eval(f"""(() => {{ const t = document.getElementById({json.dumps(table_id)});
        const i = Array.from(t.tHead.rows[0].cells).findIndex(th => th.dataset.key === {json.dumps(key)});
        return Array.from(t.tBodies[0].rows).map(r => r.cells[i].dataset.value); }})()""")


# -- the tests ------------------------------------------------------------------------------------
def test_dumped_dom_has_every_problem_table_and_solver_row(chromium, site, tmp_path):
    index, rows = site
    dom = subprocess.run([chromium, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", index.as_uri()],
                         capture_output=True, text=True, timeout=120, check=True).stdout
    assert 'data-ready="true"' in dom  # the page's script ran in the browser
    entries = scoring.summary(scoring.run_table(rows))
    assert set(DEFAULT_SOLVERS) <= set(entries["solver"])
    for problem in entries["problem_label"].unique():
        assert f'data-problem="{problem}"' in dom
    for label in entries["solver_label"]:
        assert f'data-solver="{label}"' in dom
    assert dom.count('<figure class="convergence"') == 2 * entries["problem_label"].nunique()


def test_sorting_plots_and_screenshot(browser, site, tmp_path):
    index, rows = site
    entries = scoring.summary(scoring.run_table(rows))
    page = browser(index)
    tables = page.eval("Array.from(document.querySelectorAll('table.leaderboard')).map(t => [t.id, t.dataset.problem])")
    assert sorted(p for _, p in tables) == sorted(entries["problem_label"].unique())
    table_id = tables[0][0]
    ranked = rows_of(page, table_id)
    assert sorted(ranked) == sorted(entries["solver_label"])  # every solver entry has its row
    assert page.eval(f"document.querySelectorAll('#{table_id} a.badge').length") == 2  # soba and saba were tuned

    page.click(f"#{table_id} th[data-key='solver']")
    assert rows_of(page, table_id) == sorted(ranked, key=str.lower)
    assert page.eval(f"document.querySelector(\"#{table_id} th[data-key='solver']\").getAttribute('aria-sort')") \
        == "ascending"
    page.click(f"#{table_id} th[data-key='solver']")
    assert rows_of(page, table_id) == sorted(ranked, key=str.lower, reverse=True)

    page.click(f"#{table_id} th[data-key='final']")
    finals = [float(v) for v in column_of(page, table_id, "final")]
    assert finals == sorted(finals) and len(set(finals)) > 1
    page.click(f"#{table_id} th[data-key='rank']")
    assert rows_of(page, table_id) == ranked

    # plots: inline SVG, laid out with a real size, a median line per solver entry
    sizes = page.eval("Array.from(document.querySelectorAll('figure.convergence svg, figure.profile svg'))"
                      ".map(s => { const r = s.getBoundingClientRect(); return [r.width, r.height]; })")
    assert len(sizes) == 2 * len(tables) + 1 and all(w > 300 and h > 150 for w, h in sizes)
    assert page.eval("document.querySelectorAll('img, link, script[src], iframe').length") == 0
    shot = SCREENSHOT if KEEP_SCREENSHOT else tmp_path / "leaderboard.png"
    page.screenshot(shot)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 50_000


def test_device_tabs_switch(browser, two_device_site):
    page = browser(two_device_site)
    tabs = page.eval("Array.from(document.querySelectorAll('nav.tabs button')).map(b => b.textContent)")
    assert len(tabs) == 2 and tabs[0].startswith("CPU") and tabs[1] == "GPU — Test GPU"
    visible = "Array.from(document.querySelectorAll('section.device')).map(s => !s.hidden && s.offsetHeight > 0)"
    assert page.eval(visible) == [True, False]
    page.click("nav.tabs button:nth-child(2)")
    assert page.eval(visible) == [False, True]
    assert page.eval("document.querySelector('nav.tabs button:nth-child(2)').getAttribute('aria-selected')") == "true"
    # the GPU tab has its own tables and scores (compared only among GPU rows)
    assert page.eval("document.querySelectorAll('section.device:not([hidden]) table.leaderboard').length") >= 1
    page.click("nav.tabs button:nth-child(1)")
    assert page.eval(visible) == [True, False]


def test_claims_page_links_from_the_leaderboard_and_shows_failures(browser, site, tmp_path):
    """A results folder with a claims table: the leaderboard links to claims.html, which shows one row per
    claim with its verdict (a failing claim as failing), its evidence and a laid-out plot."""
    from benchopt_bilevel.claims.table import write_claims

    _, rows = site
    results = tmp_path / "claims"
    for run_id, run in rows.groupby("run_id"):
        write_run(run, results, run_id)
    curve = [[[1.0, 10.0, 100.0], [1.0, 1e-3, 1e-6]], [[1.0, 10.0, 100.0], [1.0, 2e-3, 2e-6]]]
    entries = [{"id": f"claim-{verdict}", "paper": "A paper", "statement": f"A statement that {verdict}.",
                "scale": "tiny", "notes": "thresholds", "verdict": verdict, "summary": f"evidence of {verdict}",
                "figures": {"a final": {"median": 1e-6, "min": 1e-7, "max": 2e-6, "n": 3}, "ratio": 12.5},
                "experiment": {"problem": PROBLEM, "solvers": ["soba", "saba"], "seeds": [0, 1, 2],
                               "max_steps": 100, "max_time": 10.0, "dtype": "float64"},
                "plot": {"x": "step", "y": "objective_relative_suboptimality", "log_y": True},
                "curves": {"soba": curve, "saba": curve}}
               for verdict in ("holds", "fails", "inconclusive")]
    write_claims(results, entries)
    out = CliRunner().invoke(main, ["publish", str(results), "--site", str(tmp_path / "site")])
    assert out.exit_code == 0, out.output

    page = browser(tmp_path / "site" / "index.html")
    assert page.eval("document.getElementById('claims-link').getAttribute('href')") == "claims.html"
    claims = browser(tmp_path / "site" / "claims.html")
    verdicts = claims.eval("Array.from(document.querySelectorAll('#claims tbody tr'))"
                           ".map(r => [r.id, r.dataset.verdict, r.querySelector('.verdict').textContent])")
    assert verdicts == [[f"claim-claim-{v}", v, v] for v in ("fails", "holds", "inconclusive")]
    color = claims.eval("getComputedStyle(document.querySelector('#claim-claim-fails .verdict')).color")
    assert color == "rgb(207, 34, 46)"  # failing claims in red
    assert "1 fail" in claims.eval("document.getElementById('claims-summary').textContent")
    sizes = claims.eval("Array.from(document.querySelectorAll('td.claim-plot svg'))"
                        ".map(s => { const r = s.getBoundingClientRect(); return [r.width, r.height]; })")
    assert len(sizes) == 3 and all(w > 300 and h > 150 for w, h in sizes)
    assert claims.eval("document.querySelectorAll('img, link, script[src], iframe').length") == 0


def test_hypergradients_page_links_from_the_leaderboard_and_lays_out_its_plots(browser, site, tmp_path):
    """A results folder with the hypergradient track: the leaderboard links to hypergradients.html, which
    shows per problem the two Pareto plots (calls, time), laid out, and the cheapest-estimator table."""
    import pandas as pd

    _, rows = site
    results = tmp_path / "hg"
    for run_id, run in rows.groupby("run_id"):
        write_run(run, results, run_id)
    measured = [("aid-cg", 1, 4, 1e-1), ("aid-cg", 8, 32, 1e-5), ("jfb", float("nan"), 2, 3e-1)]
    track = pd.DataFrame([{"problem": p, "x_point": "x0", "y_point": "y*(x)", "estimator": e, "solver": e,
                           "budget": b, "oracle_calls": c, "relative_error": r, "step_time": c * 1e-5, "seed": 0}
                          for p in ("quadratic", "logreg") for e, b, c, r in measured])
    (results / "hypergradients").mkdir()
    track.to_parquet(results / "hypergradients" / "sweep.parquet")
    out = CliRunner().invoke(main, ["publish", str(results), "--site", str(tmp_path / "site")])
    assert out.exit_code == 0, out.output

    page = browser(tmp_path / "site" / "index.html")
    assert page.eval("document.getElementById('hypergradients-link').getAttribute('href')") == "hypergradients.html"
    hg = browser(tmp_path / "site" / "hypergradients.html")
    assert hg.eval("Array.from(document.querySelectorAll('section.problem')).map(s => s.dataset.problem)") == [
        "quadratic", "logreg"]
    sizes = hg.eval("Array.from(document.querySelectorAll('.pareto svg'))"
                    ".map(s => { const r = s.getBoundingClientRect(); return [r.width, r.height]; })")
    assert len(sizes) == 4 and all(w > 300 and h > 150 for w, h in sizes)
    cheapest = hg.eval("Array.from(document.querySelectorAll('table.cheapest tbody tr'))"
                       ".map(r => r.cells[3].textContent)")
    assert cheapest == ["aid-cg = 8"] * 4
    assert hg.eval("document.querySelectorAll('img, link, script[src], iframe').length") == 0
