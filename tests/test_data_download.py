"""Download engine against a loopback HTTP server: checksums, mirrors, retries, atomicity,
cache hits, offline mode, site mirror, `fetch --from`."""
from __future__ import annotations

import hashlib
import socket
import urllib.error
from pathlib import Path

import numpy as np
import pytest
from conftest_data import gzip_bytes, idx_bytes

from benchopt_bilevel.data import DataError, RemoteFile, import_local, resolve
from benchopt_bilevel.data.download import _is_permanent, download, want_progress

pytest_plugins = ["conftest_data"]  # fixtures: cache, data_server

PAYLOAD = gzip_bytes(idx_bytes(np.arange(2 * 28 * 28, dtype=np.uint8).reshape(2, 28, 28)))
SHA = hashlib.sha256(PAYLOAD).hexdigest()
MD5 = hashlib.md5(PAYLOAD).hexdigest()
FAST = dict(timeout=5, backoff=0)  # tests never sleep between retries


def record(server, *paths, **kw) -> RemoteFile:
    kw.setdefault("sha256", SHA)
    return RemoteFile("images.gz", urls=tuple(server.url(p) for p in paths), **kw)


def leftovers(folder):
    """Every file in the cache folder, temporary ones included."""
    return sorted(p.name for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def test_good_checksum_downloads_atomically(cache, data_server):
    data_server.files["a/images.gz"] = PAYLOAD
    r = resolve(record(data_server, "a/images.gz", md5=MD5, size=len(PAYLOAD)), "toy", **FAST)
    assert r.source == "download" and r.sha256 == SHA
    assert r.path == cache / "toy" / "images.gz" and r.path.read_bytes() == PAYLOAD
    assert leftovers(cache) == ["images.gz"]  # no temporary file left behind


def test_wrong_checksum_names_file_and_both_digests_and_leaves_nothing(cache, data_server):
    data_server.files["a/images.gz"] = PAYLOAD
    wrong = "0" * 64
    with pytest.raises(DataError) as err:
        resolve(record(data_server, "a/images.gz", sha256=wrong), "toy", **FAST)
    msg = str(err.value)
    assert "images.gz" in msg and wrong in msg and SHA in msg and "\n" not in msg
    assert leftovers(cache) == []
    assert data_server.requests["a/images.gz"] == 1  # a mismatch is not retried on the same mirror


def test_wrong_md5_is_caught_too(cache, data_server):
    data_server.files["images.gz"] = PAYLOAD
    with pytest.raises(DataError, match=f"expected md5 {'f' * 32}, got {MD5}"):
        resolve(record(data_server, "images.gz", sha256=None, md5="f" * 32), "toy", **FAST)


def test_mismatch_keeps_what_the_user_already_had(cache, data_server):
    data_server.files["images.gz"] = b"not the right bytes"
    dest = cache / "toy" / "images.gz"
    dest.parent.mkdir(parents=True)
    dest.write_bytes(b"user's own copy")
    with pytest.raises(DataError, match="checksum mismatch"):
        download(record(data_server, "images.gz"), dest, **FAST)
    assert dest.read_bytes() == b"user's own copy"
    assert leftovers(cache) == ["images.gz"]


def test_first_mirror_404_falls_back_to_second(cache, data_server):
    data_server.files["two/images.gz"] = PAYLOAD
    r = resolve(record(data_server, "one/images.gz", "two/images.gz"), "toy", **FAST)
    assert r.path.read_bytes() == PAYLOAD
    assert data_server.requests["one/images.gz"] == 1  # 404 is permanent: no retry
    assert data_server.requests["two/images.gz"] == 1


def test_server_error_is_retried_then_succeeds(cache, data_server):
    data_server.files["images.gz"] = PAYLOAD
    data_server.script("images.gz", "500")
    assert resolve(record(data_server, "images.gz"), "toy", **FAST).sha256 == SHA
    assert data_server.requests["images.gz"] == 2


def test_dropped_connection_is_retried_and_leaves_no_partial_file(cache, data_server):
    data_server.files["images.gz"] = PAYLOAD
    data_server.script("images.gz", "drop")
    r = resolve(record(data_server, "images.gz"), "toy", retries=2, **FAST)
    assert r.path.read_bytes() == PAYLOAD
    assert data_server.requests["images.gz"] == 2
    assert leftovers(cache) == ["images.gz"]


def test_unresolvable_host_is_not_retried():
    # No network (or a wrong host): retrying a failed name lookup within seconds never helps.
    assert _is_permanent(urllib.error.URLError(socket.gaierror(-2, "Name or service not known")))
    assert not _is_permanent(urllib.error.URLError(ConnectionResetError()))
    assert not _is_permanent(urllib.error.HTTPError("http://x", 503, "busy", {}, None))


def test_dropped_every_time_gives_one_clear_error_and_empty_cache(cache, data_server):
    data_server.files["images.gz"] = PAYLOAD
    data_server.script("images.gz", "drop", "drop", "drop", "drop")
    with pytest.raises(DataError) as err:
        resolve(record(data_server, "images.gz"), "toy", retries=2, **FAST)
    msg = str(err.value)
    assert "could not download images.gz" in msg and str(cache / "toy" / "images.gz") in msg
    assert "\n" not in msg
    assert data_server.requests["images.gz"] == 3  # 1 try + 2 retries
    assert leftovers(cache) == []


def test_short_body_without_length_fails_the_checksum_not_the_cache(cache, data_server):
    data_server.files["images.gz"] = PAYLOAD
    data_server.script("images.gz", "short")
    with pytest.raises(DataError, match="checksum mismatch"):
        resolve(record(data_server, "images.gz"), "toy", **FAST)
    assert leftovers(cache) == []


def test_cache_hit_makes_no_request(cache, data_server):
    data_server.files["images.gz"] = PAYLOAD
    f = record(data_server, "images.gz")
    resolve(f, "toy", **FAST)
    data_server.requests.clear()
    again = resolve(f, "toy", **FAST)
    assert again.source == "cache" and again.sha256 == SHA
    assert sum(data_server.requests.values()) == 0


def test_corrupt_cached_file_is_reported_not_deleted(cache, data_server):
    dest = cache / "toy" / "images.gz"
    dest.parent.mkdir(parents=True)
    dest.write_bytes(b"corrupted")
    with pytest.raises(DataError, match="expected sha256") as err:
        resolve(record(data_server, "images.gz"), "toy", **FAST)
    assert str(dest) in str(err.value) and dest.read_bytes() == b"corrupted"
    assert sum(data_server.requests.values()) == 0


@pytest.mark.parametrize("how", ["env", "param"])
def test_offline_error_names_url_and_exact_path(cache, data_server, monkeypatch, how):
    f = record(data_server, "images.gz")
    if how == "env":
        monkeypatch.setenv("BENCHOPT_BILEVEL_OFFLINE", "1")
    with pytest.raises(DataError) as err:
        resolve(f, "toy", offline=True if how == "param" else None, **FAST)
    msg = str(err.value)
    assert data_server.url("images.gz") in msg
    assert str(cache / "toy" / "images.gz") in msg
    assert sum(data_server.requests.values()) == 0


def test_offline_still_uses_the_cache(cache, data_server):
    data_server.files["images.gz"] = PAYLOAD
    f = record(data_server, "images.gz")
    resolve(f, "toy", **FAST)
    assert resolve(f, "toy", offline=True).source == "cache"


def test_file_without_address_says_where_to_put_it(cache):
    with pytest.raises(DataError) as err:
        resolve(RemoteFile("train.tar.gz", sha256=SHA), "toy_jpeg")
    msg = str(err.value)
    assert str(cache / "toy_jpeg" / "train.tar.gz") in msg
    assert "BENCHOPT_BILEVEL_TOY_JPEG" in msg and "--from" in msg


def test_site_mirror_is_tried_first(cache, data_server, monkeypatch):
    data_server.files["site/toy/images.gz"] = PAYLOAD
    monkeypatch.setenv("BENCHOPT_BILEVEL_MIRROR", data_server.url("site"))
    resolve(record(data_server, "published/images.gz"), "toy", **FAST)
    assert data_server.requests["site/toy/images.gz"] == 1
    assert data_server.requests["published/images.gz"] == 0


def test_progress_bar_runs_when_asked(cache, data_server, capsys):
    data_server.files["images.gz"] = PAYLOAD
    download(record(data_server, "images.gz"), cache / "images.gz", progress=True, **FAST)
    assert (cache / "images.gz").read_bytes() == PAYLOAD
    assert want_progress(None) is False  # pytest's stderr is not a terminal
    assert want_progress(True) is True


def test_fallback_file_used_when_primary_has_no_copy(cache, data_server):
    data_server.files["libsvm/orig.bz2"] = PAYLOAD
    fallback = RemoteFile("orig.bz2", urls=(data_server.url("libsvm/orig.bz2"),))
    primary = RemoteFile("shipped.bz2", shipped=True, sha256="1" * 64, fallback=fallback)
    r = resolve(primary, "toy", **FAST)
    assert r.file is fallback and r.sha256 == SHA  # no published checksum: the sha256 seen
    assert r.path == cache / "toy" / "orig.bz2"


def test_root_option_and_env_var_win(cache, tmp_path, data_server, monkeypatch):
    own = tmp_path / "own"
    own.mkdir()
    (own / "images.gz").write_bytes(PAYLOAD)
    f = record(data_server, "images.gz")
    assert resolve(f, "toy", root=own).source == "local"
    monkeypatch.setenv("BENCHOPT_BILEVEL_TOY", str(own))
    assert resolve(f, "toy").path == own / "images.gz"
    assert sum(data_server.requests.values()) == 0


def test_import_local_verifies_before_caching(cache, tmp_path):
    good = tmp_path / "images.gz"
    good.write_bytes(PAYLOAD)
    f = RemoteFile("images.gz", sha256=SHA)
    [r] = import_local([f], "toy", good)
    assert r.path == cache / "toy" / "images.gz" and r.path.read_bytes() == PAYLOAD
    bad = tmp_path / "other" / "images.gz"
    bad.parent.mkdir()
    bad.write_bytes(b"tampered")
    with pytest.raises(DataError, match="checksum mismatch"):
        import_local([f], "toy", bad.parent)
    assert (cache / "toy" / "images.gz").read_bytes() == PAYLOAD
    assert leftovers(cache) == ["images.gz"]


def test_unwritable_cache_is_a_clear_error(cache, tmp_path, monkeypatch, data_server):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    monkeypatch.setenv("BENCHOPT_BILEVEL_DATA", str(blocker / "sub"))
    with pytest.raises(DataError, match="BENCHOPT_BILEVEL_DATA"):
        resolve(record(data_server, "images.gz"), "toy", **FAST)


def test_cache_dir_precedence(monkeypatch, tmp_path):
    from benchopt_bilevel.data import cache_dir

    monkeypatch.delenv("BENCHOPT_BILEVEL_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "benchopt_bilevel"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert cache_dir() == Path.home() / ".cache" / "benchopt_bilevel"
    monkeypatch.setenv("BENCHOPT_BILEVEL_DATA", str(tmp_path / "mine"))
    assert cache_dir() == tmp_path / "mine"
