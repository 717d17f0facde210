"""The "who leads where" table of a leaderboard bundle, as markdown: per device class and problem,
the leader and the runner-up by the leaderboard's own rank (median time-to-target over the fresh
seeds, then median final value of the target metric), with the bundle's dates, hardware and
tuning budget read from its manifest and tuning artefacts. Nothing in it is typed by hand.

    python scripts/leaderboard_table.py docs/leaderboard                    # print the table
    python scripts/leaderboard_table.py docs/leaderboard --readme README.md # and rewrite it there

In the README the table lives between the lines START and END below; only that part is rewritten.
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import yaml

START = "<!-- reference-leaderboard-table: start (scripts/leaderboard_table.py writes this part) -->"
END = "<!-- reference-leaderboard-table: end -->"


def _number(value: float) -> str:
    return f"{value:.3g}"


def _entry(row, mixed: bool) -> str:
    """'soba: 0.412 s (3/3 runs)' when the median run reached the target, else its final metric;
    'soba (fast): …' when the problem's ranking mixes step paths."""
    reached = f"{int(row['n_reached'])}/{int(row['n_runs'])} runs at target"
    name = f"**{row['solver_label']}**" + (f" ({row['path']})" if mixed else "")
    if math.isfinite(row["time_median"]):
        return f"{name}: {_number(row['time_median'])} s ({reached})"
    return f"{name}: target missed, final {_number(row['final_metric_median'])} ({reached})"


def _budget(bundle: Path, manifest: dict) -> str:
    """The tuning budget, read from the bundle's artefacts (one line per distinct budget)."""
    lines = set()
    for entry in manifest["files"]:
        if entry["kind"] != "tuning":
            continue
        tuning = yaml.safe_load((bundle / entry["path"]).read_text())["tuning"]
        budget = tuning["budget"]
        lines.add(f"{budget['trials']} trials × {budget['tuning_seeds']} tuning seed(s) per solver, "
                  f"{len(tuning['fresh_seeds'])} fresh seeds, {_number(budget['max_time'])} s of steps per run")
    return "; ".join(sorted(lines)) or "no tuning artefact in the bundle"


def table(bundle: str | Path) -> str:
    """The markdown table (with a line of provenance above it) of a bundle."""
    from benchopt_bilevel import scoring
    from benchopt_bilevel.publishing import load_bundle, read_manifest

    bundle = Path(bundle)
    manifest = read_manifest(bundle)
    entries = scoring.summary(scoring.run_table(load_bundle(bundle)))
    provenance = manifest["provenance"]
    day = str(provenance.get("last_timestamp", manifest["created"]))[:10]
    lines = [f"Bundle of {day} ({manifest['runs']} fresh-seed runs; torch "
             f"{', '.join(provenance.get('torch_version', ['?']))}, "
             f"{', '.join(provenance.get('threads', ['?']))} thread(s) per run, "
             f"{', '.join(provenance.get('dtype', ['?']))}). Tuning: {_budget(bundle, manifest)}.",
             "",
             "| hardware | problem (target) | leader: median time-to-target | runner-up |",
             "|---|---|---|---|"]
    mixed = []
    for (device_class, problem), group in entries.groupby(["device_class", "problem_label"], sort=True):
        group = group.sort_values("rank", kind="stable")
        first = group.iloc[0]
        target = f"{first['target_metric']} ≤ {_number(first['target_value'])}"
        paths = scoring.mixed_paths(group)
        runner_up = _entry(group.iloc[1], bool(paths)) if len(group) > 1 else "—"
        lines.append(f"| {device_class} | `{problem}` ({target}) | {_entry(first, bool(paths))} | {runner_up} |")
        if paths:
            mixed.append(f"`{problem}` ({'; '.join(f'{path}: {len(labels)}' for path, labels in paths.items())} "
                         "entries)")
    if mixed:
        lines += ["", "Rankings that mix step paths (an eager step pays PyTorch's per-op dispatch, a fast one "
                  f"does not; the site marks each row): {', '.join(mixed)}."]
    return "\n".join(lines)


def update_readme(readme: str | Path, text: str) -> None:
    """Replace what lies between START and END in README (both lines must be there)."""
    readme = Path(readme)
    content = readme.read_text()
    if START not in content or END not in content:
        raise SystemExit(f"error: {readme} has no leaderboard table markers ({START!r} ... {END!r})")
    head, rest = content.split(START, 1)
    _, tail = rest.split(END, 1)
    readme.write_text(f"{head}{START}\n{text}\n{END}{tail}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundle", type=Path)
    parser.add_argument("--readme", type=Path, default=None, help="rewrite the table in this file")
    args = parser.parse_args(argv)
    text = table(args.bundle)
    print(text)
    if args.readme:
        update_readme(args.readme, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
