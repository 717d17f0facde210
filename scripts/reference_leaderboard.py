"""The reference leaderboard: tune every reference solver on every problem of the protocol with
the same budget, publish the fresh-seed runs as a bundle and a site, and write the "who leads
where" table into the README.

    python scripts/reference_leaderboard.py            # the full protocol (make leaderboard)
    python scripts/reference_leaderboard.py --quick    # the quick one (make leaderboard QUICK=1)
    python scripts/reference_leaderboard.py --check    # validate the config and print the commands

The protocol is reference-leaderboard.yml. Each problem is one `benchopt-bilevel tune` into
OUTPUT/<problem>/ (progress on the terminal; run the same command again to resume: runs already
complete there are reused; OUTPUT is results/reference-<variant>-<hash of the protocol>-<hash of
the code>, so a changed protocol or a changed solver, problem or engine starts in a new folder: a
folder keeps the runs of every code it saw, and `publish` would rank them all), then one `benchopt-bilevel publish` of those folders. A mistake in
the config ends with one line before anything runs. Paths are relative to the current
directory: run it from the repository root, as `make leaderboard` does.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

import leaderboard_table  # noqa: E402  (scripts/leaderboard_table.py)

CONFIG = REPO / "reference-leaderboard.yml"
REQUIRED = ("problems", "solvers", "n_trials", "tuning_seeds", "fresh_seeds", "max_time")
OPTIONAL = ("n_evals", "dtype", "jobs", "threads", "timeout", "path")
MIN_FRESH_SEEDS = 3


class ConfigError(Exception):
    """A mistake in the protocol file, reported as one line."""


def load_protocol(path: Path, variant: str) -> dict:
    """The `variant` section of the config, checked: names, parameters, seeds and budget."""
    from benchopt_bilevel.config import parse_seeds
    from benchopt_bilevel.errors import UserError
    from benchopt_bilevel.params import build_params, parse_spec
    from benchopt_bilevel.registry import get_problem, get_solver

    try:
        config = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as error:
        raise ConfigError(f"cannot read {path}: {error}".splitlines()[0]) from None
    if not isinstance(config, dict) or variant not in config:
        raise ConfigError(f"{path} has no section {variant!r}")
    protocol = config[variant]
    where = f"{Path(path).name} ({variant})"
    if not isinstance(protocol, dict):
        raise ConfigError(f"{where}: expected a mapping of options")
    unknown = sorted(set(protocol) - set(REQUIRED) - set(OPTIONAL))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; "
                          f"known: {', '.join(REQUIRED + OPTIONAL)}")
    missing = [key for key in REQUIRED if key not in protocol]
    if missing:
        raise ConfigError(f"{where}: missing key(s) {', '.join(missing)}")
    for key in ("problems", "solvers"):
        if not isinstance(protocol[key], list) or not protocol[key]:
            raise ConfigError(f"{where}: {key} must be a non-empty list")
    try:
        for spec in protocol["problems"]:
            name, params = parse_spec(str(spec))
            problem_cls = get_problem(name)
            build_params(problem_cls.Params, params, f"problem {name!r}")
        for spec in protocol["solvers"]:
            name, params = parse_spec(str(spec))
            solver_cls = get_solver(name)
            build_params(solver_cls.Params, params, f"solver {name!r}")
        tuning = parse_seeds(str(protocol["tuning_seeds"]))
        fresh = parse_seeds(str(protocol["fresh_seeds"]))
    except UserError as error:
        raise ConfigError(f"{where}: {error}") from None
    if len(fresh) < MIN_FRESH_SEEDS:
        raise ConfigError(f"{where}: {len(fresh)} fresh seed(s); the protocol needs at least {MIN_FRESH_SEEDS}")
    if set(tuning) & set(fresh):
        raise ConfigError(f"{where}: tuning and fresh seeds overlap ({sorted(set(tuning) & set(fresh))})")
    if not (isinstance(protocol["n_trials"], int) and protocol["n_trials"] >= 1):
        raise ConfigError(f"{where}: n_trials must be a positive integer")
    if not (isinstance(protocol["max_time"], (int, float)) and protocol["max_time"] > 0):
        raise ConfigError(f"{where}: max_time must be a positive number of seconds")
    return protocol


def protocol_hash(protocol: dict) -> str:
    """8 hex digits of the protocol section: the default results folder, so that the same protocol
    resumes in the same folder and a changed one starts afresh (a folder mixing two budgets
    would publish both)."""
    return hashlib.sha256(json.dumps(protocol, sort_keys=True).encode()).hexdigest()[:8]


def slug(spec: str) -> str:
    """A folder name for a problem spec: 'logreg[dataset=adult]' -> 'logreg-dataset-adult'."""
    return re.sub(r"[^A-Za-z0-9_.]+", "-", spec).strip("-")


def tune_command(protocol: dict, problem: str, output_dir: Path, variant: str) -> list[str]:
    """The `benchopt-bilevel tune` command of one problem."""
    command = [sys.executable, "-m", "benchopt_bilevel", "tune", "--problem", problem]
    for solver in protocol["solvers"]:
        command += ["--solver", str(solver)]
    command += ["--n-trials", str(protocol["n_trials"]), "--tuning-seeds", str(protocol["tuning_seeds"]),
                "--fresh-seeds", str(protocol["fresh_seeds"]), "--max-time", str(protocol["max_time"]),
                "--label", f"{variant}-{slug(problem)}", "--output-dir", str(output_dir)]
    for key in OPTIONAL:
        if key in protocol:
            command += [f"--{key.replace('_', '-')}", str(protocol[key])]
    return command


def publish_command(output_dirs: list[Path], site: Path, bundle: Path, variant: str,
                    git_branch: str | None) -> list[str]:
    command = [sys.executable, "-m", "benchopt_bilevel", "publish", *map(str, output_dirs),
               "--site", str(site), "--bundle", str(bundle),
               "--title", f"benchopt-bilevel reference leaderboard ({variant} protocol)"]
    if git_branch:
        command += ["--git-branch", git_branch, "--message", f"reference leaderboard ({variant} protocol)"]
    return command


def run(command: list[str]) -> None:
    print("$ " + " ".join(command[1:] if command[0] == sys.executable else command), flush=True)
    subprocess.run(command, check=True)


CODE_DIRS = ("benchopt_bilevel", "problems", "solvers", "datasets")


def code_hash(root: Path = REPO) -> str:
    """8 hex digits of the code a run executes (the package's, plugins' and native kernels'
    sources): the runs' own code hash (`provenance.code_hash`) only keeps a stale run from being
    reused, not from being published next to fresh ones."""
    digest = hashlib.sha256()
    for directory in CODE_DIRS:
        for path in sorted((root / directory).rglob("*")):
            if path.suffix in (".py", ".cpp") and "__pycache__" not in path.parts:
                digest.update(str(path.relative_to(root)).encode())
                digest.update(path.read_bytes())
    return digest.hexdigest()[:8]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the quick protocol (a 2-core CPU)")
    parser.add_argument("--config", type=Path, default=CONFIG, help="the protocol file")
    parser.add_argument("--output", type=Path, default=None,
                        help="results folder [default: results/reference-VARIANT-PROTOCOL-CODE, hashes of the "
                             "protocol and of the code]")
    parser.add_argument("--site", type=Path, default=Path("site"), help="site folder [default: site]")
    parser.add_argument("--bundle", type=Path, default=Path("docs/leaderboard"),
                        help="bundle folder [default: docs/leaderboard]")
    parser.add_argument("--readme", type=Path, default=Path("README.md"),
                        help="README whose leaderboard table is rewritten [default: README.md]; '' for none")
    parser.add_argument("--screenshot", type=Path, default=Path("docs/leaderboard.png"),
                        help="screenshot of the page (needs Chromium) [default: docs/leaderboard.png]; '' for none")
    parser.add_argument("--git-branch", default=None, help="also commit the site and the bundle to this branch")
    parser.add_argument("--check", action="store_true", help="validate the config, print the commands, run nothing")
    args = parser.parse_args(argv)

    variant = "quick" if args.quick else "full"
    try:
        protocol = load_protocol(args.config, variant)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    output = args.output or Path("results") / f"reference-{variant}-{protocol_hash(protocol)}-{code_hash()}"
    output_dirs = [output / slug(str(problem)) for problem in protocol["problems"]]
    tunes = [tune_command(protocol, str(p), d, variant) for p, d in zip(protocol["problems"], output_dirs)]
    publish = publish_command(output_dirs, args.site, args.bundle, variant, args.git_branch)
    if args.check:
        for command in [*tunes, publish]:
            print(" ".join(command[1:]))
        return 0

    try:
        for command in tunes:
            run(command)
        run(publish)
    except subprocess.CalledProcessError as error:
        print(f"error: `{' '.join(error.cmd[3:5])}` exited with status {error.returncode}", file=sys.stderr)
        return 1
    table = leaderboard_table.table(args.bundle)
    print(table)
    if str(args.readme) not in ("", "."):
        leaderboard_table.update_readme(args.readme, table)
        print(f"table written to {args.readme}")
    if str(args.screenshot) not in ("", "."):
        import screenshot_site  # scripts/screenshot_site.py

        browser = screenshot_site.find_chromium()
        if browser is None:
            print("no Chromium (Debian package `chromium`): no screenshot taken", file=sys.stderr)
        else:
            screenshot_site.screenshot(browser, args.site / "index.html", args.screenshot)
            print(f"screenshot: {args.screenshot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
