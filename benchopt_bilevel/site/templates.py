"""The leaderboard page: one self-contained HTML file (inline CSS, inline SVG plots, inline JS).

Nothing is fetched from the network: the page works from a file:// URL, offline.
"""
from string import Template

CSS = """
:root { --fg: #1f2328; --muted: #59636e; --line: #d1d9e0; --bg-alt: #f6f8fa; --accent: #0969da; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif;
       color: var(--fg); margin: 0; padding: 0 24px 48px; max-width: 1240px; margin-inline: auto; }
header { padding: 18px 0 8px; border-bottom: 1px solid var(--line); }
h1 { font-size: 24px; margin: 0 0 4px; }
h2 { font-size: 20px; margin: 24px 0 8px; }
h3 { font-size: 17px; margin: 28px 0 6px; padding-top: 12px; border-top: 1px solid var(--line); }
.muted, .meta { color: var(--muted); }
.meta { margin: 2px 0 8px; }
code { font-size: 12.5px; background: var(--bg-alt); padding: 1px 4px; border-radius: 4px; }
nav.tabs { display: flex; gap: 6px; flex-wrap: wrap; margin: 14px 0 4px; }
nav.tabs button { font: inherit; padding: 6px 12px; border: 1px solid var(--line); border-radius: 6px;
                  background: white; cursor: pointer; }
nav.tabs button[aria-selected="true"] { background: var(--accent); color: white; border-color: var(--accent); }
table { border-collapse: collapse; width: 100%; margin: 6px 0 10px; font-variant-numeric: tabular-nums; }
th, td { border-bottom: 1px solid var(--line); padding: 5px 8px; text-align: left; vertical-align: top; }
th { background: var(--bg-alt); font-weight: 600; }
table.sortable th { cursor: pointer; user-select: none; }
table.sortable th::after { content: " \\2195"; color: #aab; font-size: 11px; }
table.sortable th[aria-sort="ascending"]::after { content: " \\25B2"; color: var(--accent); }
table.sortable th[aria-sort="descending"]::after { content: " \\25BC"; color: var(--accent); }
td.num { text-align: right; white-space: nowrap; }
td .band { color: var(--muted); font-size: 12px; }
tr.missed td.time { color: #9a6700; }
.badge { display: inline-block; font-size: 11px; padding: 0 6px; border-radius: 10px; margin-left: 4px;
         background: #ddf4ff; color: #0550ae; text-decoration: none; }
.badge.default { background: #eef1f4; color: var(--muted); }
.badge.path { background: #fff8c5; color: #7d4e00; }
p.paths { border-left: 3px solid #d4a72c; padding-left: 8px; }
td .sources { display: block; color: var(--muted); font-size: 11px; }
.status-diverged, .status-error, .status-timeout { color: #cf222e; }
.status-skipped { color: var(--muted); }
.plots { display: grid; grid-template-columns: repeat(auto-fit, minmax(460px, 1fr)); gap: 8px; }
figure { margin: 0; }
figure svg { width: 100%; height: auto; }
figcaption { color: var(--muted); font-size: 12.5px; }
details { margin: 8px 0; }
summary { cursor: pointer; font-weight: 600; }
.table-wrap { overflow-x: auto; }
.scores-table { max-width: 760px; }
figure.profile svg { max-width: 860px; }
th { white-space: normal; }
td.solver-cell { min-width: 160px; max-width: 360px; overflow-wrap: anywhere; }
td .band { display: block; }
dl.kv { display: grid; grid-template-columns: max-content 1fr; gap: 2px 14px; margin: 6px 0; }
dl.kv dt { color: var(--muted); }
dl.kv dd { margin: 0; }
footer { margin-top: 40px; border-top: 1px solid var(--line); padding-top: 10px; color: var(--muted); }
"""

JS = """
(function () {
  "use strict";
  function cellValue(row, index, numeric) {
    var cell = row.cells[index];
    var raw = cell.getAttribute("data-value");
    if (raw === null) raw = cell.textContent.trim();
    if (!numeric) return raw.toLowerCase();
    var value = parseFloat(raw);
    return isNaN(value) ? null : value;
  }
  function sortTable(table, key, direction) {
    var headers = Array.prototype.slice.call(table.tHead.rows[0].cells);
    var index = -1;
    headers.forEach(function (th, i) { if (th.getAttribute("data-key") === key) index = i; });
    if (index < 0) return false;
    var numeric = headers[index].getAttribute("data-type") === "num";
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    var sign = direction === "desc" ? -1 : 1;
    rows.sort(function (a, b) {
      var x = cellValue(a, index, numeric), y = cellValue(b, index, numeric);
      if (x === y) return 0;
      if (x === null) return 1;           // missing values last, whatever the direction
      if (y === null) return -1;
      if (numeric) return sign * (x < y ? -1 : 1);
      return sign * x.localeCompare(y);
    });
    rows.forEach(function (row) { body.appendChild(row); });
    headers.forEach(function (th) { th.removeAttribute("aria-sort"); });
    headers[index].setAttribute("aria-sort", direction === "desc" ? "descending" : "ascending");
    table.setAttribute("data-sorted", key + ":" + direction);
    return true;
  }
  function showTab(id) {
    var tabs = document.querySelectorAll("nav.tabs button");
    var found = false;
    tabs.forEach(function (b) { if (b.getAttribute("data-target") === id) found = true; });
    if (!found) return;
    tabs.forEach(function (b) {
      var on = b.getAttribute("data-target") === id;
      b.setAttribute("aria-selected", on ? "true" : "false");
      document.getElementById(b.getAttribute("data-target")).hidden = !on;
    });
  }
  function applyHash() {
    // #sort=TABLE_ID:KEY:asc|desc sorts a table (and shows its tab); #tab=SECTION_ID shows a tab.
    var hash = decodeURIComponent(window.location.hash.replace(/^#/, ""));
    hash.split("&").forEach(function (part) {
      var eq = part.indexOf("=");
      if (eq < 0) return;
      var name = part.slice(0, eq), value = part.slice(eq + 1);
      if (name === "tab") showTab(value);
      if (name === "sort") {
        var bits = value.split(":");
        var table = document.getElementById(bits[0]);
        if (!table) return;
        var section = table.closest("section.device");
        if (section) showTab(section.id);
        sortTable(table, bits[1], bits[2] === "desc" ? "desc" : "asc");
      }
    });
  }
  document.querySelectorAll("table.sortable").forEach(function (table) {
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th) {
      th.addEventListener("click", function () {
        var key = th.getAttribute("data-key");
        var next = th.getAttribute("aria-sort") === "ascending" ? "desc" : "asc";
        sortTable(table, key, next);
      });
    });
  });
  document.querySelectorAll("nav.tabs button").forEach(function (button) {
    button.addEventListener("click", function () { showTab(button.getAttribute("data-target")); });
  });
  window.leaderboard = { sortTable: sortTable, showTab: showTab };
  applyHash();
  window.addEventListener("hashchange", applyHash);
  document.body.setAttribute("data-ready", "true");
})();
"""

PAGE = Template("""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="benchopt-bilevel $version">
<title>$title</title>
<style>$css</style>
</head>
<body>
<header>
<h1>$title</h1>
<p class="meta">$summary</p>
<p class="meta">Score = time-to-target: for each problem, the first time (synchronized seconds of solver steps,
evaluation excluded) a run reaches the problem's documented target; median over seeds (20–80% band);
ratio to the best solver; performance profile ρ(τ) and its integral over τ ∈ [1, 4] (linear τ, normalized by 3).
Only runs on the same device (type and model) are compared.</p>
$download
<nav class="tabs" role="tablist">$tabs</nav>
</header>
<main>
$devices
<section id="provenance">
<h2>Provenance</h2>
$provenance
</section>
</main>
<footer>Generated $generated by benchopt-bilevel $version. Static page: no network access, plots are inline SVG.
See <code>docs/leaderboard.md</code> for how the score is computed, how solvers are tuned and how results are published.</footer>
<script>$js</script>
</body>
</html>
""")
