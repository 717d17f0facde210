"""Results bundles: one merged parquet plus a manifest, and publishing to a git branch.

A bundle is a directory:

    manifest.json                     the commit point: format, schema versions, files with
                                      sha256 / bytes / rows / runs, provenance of the data
    results-<sha256[:16]>.parquet     every row of every run (the long-format schema)
    tuning/<name>.yaml                tuning artefacts published with the results (optional)

Writing is atomic: data files are written under a temporary name, fsynced and renamed; their
names carry their checksum, so the files of the previous bundle stay valid until the new
manifest replaces the old one in one rename; files no manifest names are then removed. A reader
therefore sees the old bundle or the new one, never a mix, and `verify_bundle` checks every
checksum.

Merging (`merge_sources`) reads results directories and bundles (from different machines, say)
and keeps every run once: rows are deduplicated by run identity, `(run_id, device_name)`. The
runner's run_id already hashes the problem, the solver, their parameters, the seed, the device
type, the dtype and the code; the device name is added so that the same cell measured on two
CPU or GPU models is kept twice (those are different measurements, compared in different
device classes). When the same run appears in two sources, the first source wins.

`publish_to_git_branch` commits a site and a bundle to a branch of a local repository with git
plumbing (a temporary index, `write-tree`, `commit-tree`, `update-ref`): the user's checkout, index
and HEAD are never touched.
"""
from __future__ import annotations

import datetime
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any, Iterable

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from . import __version__
from .atomic import atomic_write
from .claims.table import CLAIMS_FILE, read_claims, write_claims
from .cli_hypergradients import SUBFOLDER as TRACK_FOLDER
from .errors import UserError
from .provenance import git_revision
from .results import SCHEMA_VERSION, load_results

BUNDLE_FORMAT = "benchopt-bilevel-bundle"
BUNDLE_VERSION = 1
MANIFEST = "manifest.json"
IDENTITY = ("run_id", "device_name")
PROVENANCE_COLUMNS = ("package_version", "git_revision", "torch_version", "python_version", "device",
                      "device_name", "hostname", "threads", "allocator", "native_kernels", "dtype",
                      "schema_version")


def sha256_file(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def is_bundle(path: str | os.PathLike) -> bool:
    return (Path(path) / MANIFEST).is_file()


# -- reading -----------------------------------------------------------------------------------------
def read_manifest(bundle_dir: str | os.PathLike) -> dict[str, Any]:
    path = Path(bundle_dir) / MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(f"no bundle at {bundle_dir}: {MANIFEST} is missing") from None
    except (OSError, ValueError) as error:
        raise UserError(f"cannot read {path}: {error}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != BUNDLE_FORMAT:
        raise UserError(f"{path} is not a {BUNDLE_FORMAT} manifest")
    if manifest.get("bundle_version") != BUNDLE_VERSION:
        raise UserError(f"{path}: bundle version {manifest.get('bundle_version')!r} is not supported "
                        f"(expected {BUNDLE_VERSION})")
    return manifest


def verify_bundle(bundle_dir: str | os.PathLike) -> dict[str, Any]:
    """The manifest, after checking that every file it names exists with its sha256 and size."""
    bundle_dir = Path(bundle_dir)
    manifest = read_manifest(bundle_dir)
    for entry in manifest["files"]:
        path = bundle_dir / entry["path"]
        if not path.is_file():
            raise UserError(f"bundle {bundle_dir}: {entry['path']} is missing")
        if path.stat().st_size != entry["bytes"] or sha256_file(path) != entry["sha256"]:
            raise UserError(f"bundle {bundle_dir}: {entry['path']} does not match its sha256 in {MANIFEST} "
                            "(corrupt or modified); publish the bundle again")
    return manifest


def load_bundle(bundle_dir: str | os.PathLike) -> pd.DataFrame:
    """Every row of a bundle (checksums verified)."""
    bundle_dir = Path(bundle_dir)
    manifest = verify_bundle(bundle_dir)
    frames = [pq.read_table(bundle_dir / e["path"]).to_pandas() for e in manifest["files"] if e["kind"] == "results"]
    return pd.concat(frames, ignore_index=True, sort=False) if frames else pd.DataFrame()


def bundle_tuning_files(bundle_dir: str | os.PathLike) -> list[Path]:
    bundle_dir = Path(bundle_dir)
    manifest = read_manifest(bundle_dir)
    return [bundle_dir / e["path"] for e in manifest["files"] if e["kind"] == "tuning"]


def load_source(path: str | os.PathLike) -> pd.DataFrame:
    """Rows of a bundle (a folder with manifest.json) or of a results directory."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"no results directory or bundle at {path}")
    if not path.is_dir():
        raise UserError(f"{path} is not a directory: give a results directory or a bundle")
    return load_bundle(path) if is_bundle(path) else load_results(path)


def deduplicate(frames: Iterable[pd.DataFrame]) -> pd.DataFrame:
    """Concatenate result tables keeping each run (run_id, device_name) from its first table only."""
    kept, seen = [], set()
    for frame in frames:
        if frame is None or frame.empty:
            continue
        frame = frame.copy()
        if "device_name" not in frame:
            frame["device_name"] = "unknown"
        keys = list(zip(frame["run_id"], frame["device_name"].fillna("unknown")))
        new = [key not in seen for key in keys]
        kept.append(frame[new])
        seen.update(keys)
    if not kept:
        return pd.DataFrame()
    merged = pd.concat(kept, ignore_index=True, sort=False)
    sort = [c for c in ("problem", "solver", "run_id", "device_name", "step") if c in merged]
    return merged.sort_values(sort, kind="stable").reset_index(drop=True)


def merge_sources(sources: Iterable[str | os.PathLike]) -> pd.DataFrame:
    """Rows of every source (bundles or results directories), each run once, first source first."""
    return deduplicate(load_source(source) for source in sources)


# -- writing -----------------------------------------------------------------------------------------
def _provenance(table: pd.DataFrame) -> dict[str, Any]:
    info: dict[str, Any] = {}
    for column in PROVENANCE_COLUMNS:
        if column in table:
            info[column] = sorted({str(v) for v in table[column].dropna().unique()})
    if "timestamp" in table and table["timestamp"].notna().any():
        stamps = table["timestamp"].dropna().astype(str)
        info["first_timestamp"], info["last_timestamp"] = stamps.min(), stamps.max()
    return info


def write_bundle(table: pd.DataFrame, bundle_dir: str | os.PathLike,
                 tuning_files: Iterable[str | os.PathLike] = (), sources: Iterable[str] = (),
                 claims: list[dict[str, Any]] = (), hypergradients: pd.DataFrame | None = None) -> dict[str, Any]:
    """Write `table` (and tuning artefacts, the claims table's entries and the hypergradient
    track's measurements) as a bundle in BUNDLE_DIR; returns the manifest."""
    if table is None or table.empty:
        raise UserError("no results to bundle: the table is empty")
    bundle_dir = Path(bundle_dir)
    bundle_dir.mkdir(parents=True, exist_ok=True)
    arrow = pa.Table.from_pandas(table.reset_index(drop=True), preserve_index=False)
    arrow = arrow.replace_schema_metadata({**(arrow.schema.metadata or {}),
                                           b"benchopt_bilevel_schema": str(SCHEMA_VERSION).encode()})
    sink = pa.BufferOutputStream()
    pq.write_table(arrow, sink)
    data = sink.getvalue().to_pybytes()
    digest = hashlib.sha256(data).hexdigest()
    results_name = f"results-{digest[:16]}.parquet"
    atomic_write(bundle_dir / results_name, data)
    files = [{"path": results_name, "kind": "results", "sha256": digest, "bytes": len(data),
              "rows": int(len(table)), "runs": int(table.drop_duplicates(
                  [c for c in IDENTITY if c in table]).shape[0])}]
    tuning_dir = bundle_dir / "tuning"
    for source in tuning_files:
        source = Path(source)
        content = source.read_bytes()
        tuning_dir.mkdir(exist_ok=True)
        name = f"tuning/{source.stem}-{hashlib.sha256(content).hexdigest()[:12]}{source.suffix}"
        atomic_write(bundle_dir / name, content)
        files.append({"path": name, "kind": "tuning", "sha256": hashlib.sha256(content).hexdigest(),
                      "bytes": len(content), "source": source.name})
    claims_path = bundle_dir / CLAIMS_FILE
    if claims:  # the claims track's verdicts travel with their runs (the Claims page reads them)
        write_claims(bundle_dir, list(claims), merge=False)
        files.append({"path": CLAIMS_FILE, "kind": "claims", "sha256": sha256_file(claims_path),
                      "bytes": claims_path.stat().st_size})
    else:
        claims_path.unlink(missing_ok=True)
    track_dir = bundle_dir / TRACK_FOLDER
    if hypergradients is not None and not hypergradients.empty:  # the Hypergradients page reads them
        sink = pa.BufferOutputStream()
        pq.write_table(pa.Table.from_pandas(hypergradients.reset_index(drop=True), preserve_index=False), sink)
        content = sink.getvalue().to_pybytes()
        name = f"{TRACK_FOLDER}/track-{hashlib.sha256(content).hexdigest()[:16]}.parquet"
        track_dir.mkdir(exist_ok=True)
        atomic_write(bundle_dir / name, content)
        files.append({"path": name, "kind": "hypergradients", "sha256": hashlib.sha256(content).hexdigest(),
                      "bytes": len(content), "rows": int(len(hypergradients))})
    schema_versions = sorted({int(v) for v in table["schema_version"].dropna()}) if "schema_version" in table else []
    manifest = {
        "format": BUNDLE_FORMAT,
        "bundle_version": BUNDLE_VERSION,
        "schema_version": SCHEMA_VERSION,
        "data_schema_versions": schema_versions,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "rows": int(len(table)),
        "runs": files[0]["runs"],
        "identity": list(IDENTITY),
        "files": files,
        "sources": list(sources),
        "provenance": _provenance(table),
        "written_by": {"package_version": __version__, "git_revision": git_revision()},
    }
    atomic_write(bundle_dir / MANIFEST, (json.dumps(manifest, indent=2, sort_keys=False) + "\n").encode())
    named = {e["path"] for e in files}
    for path in [*bundle_dir.glob("results-*.parquet"), *tuning_dir.glob("*"), *track_dir.glob("*.parquet")]:
        if path.relative_to(bundle_dir).as_posix() not in named:
            path.unlink(missing_ok=True)
    return manifest


def bundle(sources: Iterable[str | os.PathLike], bundle_dir: str | os.PathLike,
           tuning_files: Iterable[str | os.PathLike] = ()) -> dict[str, Any]:
    """Merge SOURCES (results directories or bundles) into a bundle at BUNDLE_DIR."""
    sources = [Path(s) for s in sources]
    table = merge_sources(sources)
    if table.empty:
        raise UserError(f"no results in {', '.join(map(str, sources))}; run `benchopt-bilevel run` first")
    tuning = list(tuning_files)
    for source in sources:
        if is_bundle(source):
            tuning.extend(bundle_tuning_files(source))
    unique: dict[str, Path] = {}
    for path in map(Path, tuning):
        unique.setdefault(sha256_file(path), path)
    claims: dict[str, dict[str, Any]] = {}
    for source in sources:  # a claims table beside the runs (or in a bundle): first source wins
        for entry in read_claims(source):
            claims.setdefault(entry["id"], entry)
    from .site.hypergradients import find_track  # noqa: PLC0415 - the site imports this module

    return write_bundle(table, bundle_dir, unique.values(), sources=[str(s) for s in sources],
                        claims=[claims[key] for key in sorted(claims)], hypergradients=find_track(sources))


# -- git ---------------------------------------------------------------------------------------------
def _git(args: list[str], cwd: Path | None = None, env: dict[str, str] | None = None,
         check: bool = True) -> subprocess.CompletedProcess:
    try:
        result = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    except FileNotFoundError:
        raise UserError("git is not installed; install git to publish to a branch") from None
    if check and result.returncode != 0:
        message = (result.stderr or result.stdout).strip().splitlines()
        raise UserError(f"git {' '.join(args[:2])} failed: {message[-1] if message else result.returncode}")
    return result


def publish_to_git_branch(paths: dict[str, str | os.PathLike], repo: str | os.PathLike, branch: str,
                          message: str = "Publish leaderboard") -> str:
    """Commit PATHS (destination in the branch -> local folder; '' is the root) to BRANCH of REPO.

    The branch's new tree is exactly PATHS (a full snapshot); its previous tip is the parent.
    Nothing is committed when the tree is unchanged. Returns the branch's commit sha.
    The repository's working tree, index and HEAD are left alone; publishing to the branch that
    is checked out is refused.
    """
    repo = Path(repo)
    if not repo.exists():
        raise UserError(f"no git repository at {repo}")
    found = _git(["rev-parse", "--absolute-git-dir"], cwd=repo, check=False)
    if found.returncode != 0:
        raise UserError(f"{repo} is not a git repository (git init it, or give --git-repo)")
    git_dir = found.stdout.strip()
    if _git(["check-ref-format", "--branch", branch], cwd=repo, check=False).returncode != 0:
        raise UserError(f"invalid branch name {branch!r}")
    ref = f"refs/heads/{branch}"
    head = _git(["symbolic-ref", "-q", "HEAD"], cwd=repo, check=False).stdout.strip()
    if head == ref:
        raise UserError(f"branch {branch!r} is checked out in {repo}; publish to another branch (e.g. gh-pages)")
    parent = _git(["rev-parse", "--verify", "-q", f"{ref}^{{commit}}"], cwd=repo, check=False).stdout.strip()

    with tempfile.TemporaryDirectory(prefix="benchopt-bilevel-publish-") as tmp:
        staging = Path(tmp) / "tree"
        staging.mkdir()
        for destination, source in paths.items():
            source = Path(source)
            if not source.is_dir():
                raise UserError(f"nothing to publish at {source}")
            shutil.copytree(source, staging / destination if destination else staging, dirs_exist_ok=True)
        (staging / ".nojekyll").write_text("")  # GitHub Pages: serve files as they are
        env = {**os.environ, "GIT_INDEX_FILE": str(Path(tmp) / "index"), "GIT_DIR": git_dir,
               "GIT_WORK_TREE": str(staging)}
        for key, fallback in (("GIT_AUTHOR_NAME", "benchopt-bilevel"), ("GIT_AUTHOR_EMAIL", "benchopt-bilevel@localhost"),
                              ("GIT_COMMITTER_NAME", "benchopt-bilevel"),
                              ("GIT_COMMITTER_EMAIL", "benchopt-bilevel@localhost")):
            config_key = "user.name" if key.endswith("NAME") else "user.email"
            if key not in env and _git(["config", "--get", config_key], cwd=staging, env=env,
                                       check=False).returncode != 0:
                env[key] = fallback
        _git(["add", "-A", "--force", "."], cwd=staging, env=env)
        tree = _git(["write-tree"], cwd=staging, env=env).stdout.strip()
        if parent:
            parent_tree = _git(["rev-parse", f"{parent}^{{tree}}"], cwd=staging, env=env).stdout.strip()
            if parent_tree == tree:
                return parent
        commit = _git(["commit-tree", tree, *(["-p", parent] if parent else []), "-m", message],
                      cwd=staging, env=env).stdout.strip()
        _git(["update-ref", "-m", f"benchopt-bilevel publish: {message}", ref, commit, parent or ""],
             cwd=staging, env=env)
    return commit
