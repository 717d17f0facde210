"""Registry and dataset modules: shipped files, their published checksums, loaders."""
from __future__ import annotations

import hashlib
import importlib.util
import pickle
import sys
from pathlib import Path

import numpy as np
import pytest

from benchopt_bilevel.data import ArrayDataset, DataError, ImageClassStore, RemoteFile, get_dataset, list_datasets
from benchopt_bilevel.data.cache import shipped_dir

pytest_plugins = ["conftest_data"]  # fixtures: cache, data_server

# sha256 of the shipped files, as published in the data README
README_SHA256 = {
    "ijcnn1.trn.bz2": "b38a4198ce142d43e96fb86d17b87211feec1f909ac344fa057455c69de29de3",
    "ijcnn1.tst.bz2": "acd1db430684fdd3f0c768ecc49aa8e749d0004fc117611220c2aa576a7b6a24",
    "adult.trn.bz2": "73ce74d43bbfc988b08e6ecf738cf5484f19dafa143c31f702f3a8b779d277e5",
    "adult.tst.bz2": "bdb2ec9642e77947a67269471506b18bc4dcf03413f44814dc24833432ba818d",
    "mnist_5k.csv.gz": "846f6cad587fea3877f6e0fe0a1968dfc68867ce170d3bc9fc2dccdbed17961d",
    "images_background_small1.zip": "f38eb80f801274ac2b4dff5b24289016bfaba4a7d5bb50deebf27104ad6cb8a4",
    "images_background_small2.zip": "3ccaa407515a8778e5d0861875af38b17e418f301ad5bb3b5a6b65d901a41c7f",
    "one_shot_all_runs.zip": "437c1eeab0af8484112e1b4cc0f3d541ec727f7c47b9b202da738af9dfd6c325",
}
EXPECTED = {"adult", "breast_cancer", "cifar10", "cifar10_jpeg", "covtype", "digits", "fashion_mnist",
            "ijcnn1", "miniimagenet", "mnist", "mnist_5k", "omniglot", "synthetic_binary"}


def test_registry_lists_every_dataset_with_its_declaration():
    infos = {i.name: i for i in list_datasets()}
    assert set(infos) == EXPECTED
    for info in infos.values():
        assert info.description and "\n" not in info.description
        assert info.licence and "\n" not in info.licence
        assert all(isinstance(f, RemoteFile) for f in info.files)
        assert callable(info.module.load)
    assert get_dataset("ijcnn1") is infos["ijcnn1"]


def test_unknown_name_suggests_close_matches():
    with pytest.raises(DataError, match="unknown dataset 'mnsit'. Did you mean mnist"):
        get_dataset("mnsit")


def test_shipped_files_match_the_published_sha256():
    shipped = {f.name: f for i in list_datasets() for f in i.files if f.shipped}
    assert set(shipped) == set(README_SHA256)
    for name, digest in README_SHA256.items():
        path = shipped_dir() / name
        assert hashlib.sha256(path.read_bytes()).hexdigest() == digest == shipped[name].sha256
        assert path.stat().st_size == shipped[name].size


def test_licences_file_names_every_shipped_file():
    text = (shipped_dir().parent / "LICENSES.md").read_text()
    for name in README_SHA256:
        assert name in text


def test_ijcnn1_shipped_loads_with_published_shape(cache, data_server):
    ds = get_dataset("ijcnn1").load()
    assert isinstance(ds, ArrayDataset) and ds.source == "shipped"
    assert ds.X_train.shape == (49_990, 22) and ds.X_test.shape == (91_701, 22)
    assert ds.X_train.dtype == np.float32 and ds.y_train.dtype == np.int64
    assert set(np.unique(ds.y_train)) == {0, 1}
    assert ds.y_train.mean() == pytest.approx(0.097, abs=0.001)  # 9.7% positives
    assert ds.sha256["ijcnn1.trn.bz2"] == README_SHA256["ijcnn1.trn.bz2"]
    assert sum(data_server.requests.values()) == 0 and not cache.exists()


def test_ijcnn1_falls_back_to_libsvm_download_when_not_shipped(cache, data_server, monkeypatch, tmp_path):
    """A package without the shipped copy downloads LIBSVM's files (served here by the loopback
    server through the site-mirror variable) and verifies their structure instead."""
    empty = tmp_path / "no_shipped_data"
    empty.mkdir()
    monkeypatch.setattr("benchopt_bilevel.data.fetch.shipped_dir", lambda: empty)
    monkeypatch.setenv("BENCHOPT_BILEVEL_MIRROR", data_server.url("mirror"))
    # The shipped copy is LIBSVM's text, bz2-compressed: serve it under LIBSVM's names.
    data_server.files["mirror/ijcnn1/ijcnn1.bz2"] = (shipped_dir() / "ijcnn1.trn.bz2").read_bytes()
    data_server.files["mirror/ijcnn1/ijcnn1.t.bz2"] = b"+1 1:0.5\n-1 22:1\n"  # wrong structure
    with pytest.raises(DataError, match=r"ijcnn1.t.bz2: expected 91701 rows, found 2"):
        get_dataset("ijcnn1").load(progress=False)
    assert (cache / "ijcnn1" / "ijcnn1.bz2").is_file()


def test_adult_shipped_zero_based_copy(cache):
    ds = get_dataset("adult").load()
    assert ds.X_train.shape == (32_561, 123) and ds.X_test.shape == (16_281, 123)
    assert set(np.unique(ds.X_train)) == {0.0, 1.0}
    assert ds.y_train.mean() == pytest.approx(0.2408, abs=1e-3)
    assert (ds.X_train.sum(axis=1) == 14).mean() > 0.9  # one-hot blocks: 14 active features per row


def test_mnist_5k_deterministic_stratified_split(cache):
    a = get_dataset("mnist_5k").load()
    b = get_dataset("mnist_5k").load(flatten=False)
    assert a.X_train.shape == (4_000, 784) and b.X_train.shape == (4_000, 1, 28, 28)
    assert np.bincount(a.y_test).tolist() == [100] * 10
    np.testing.assert_array_equal(a.X_train, b.X_train.reshape(4_000, -1))
    assert 0.0 <= a.X_train.min() and a.X_train.max() == 1.0
    c = get_dataset("mnist_5k").load(seed=1)
    assert not np.array_equal(a.y_train, c.y_train) or not np.array_equal(a.X_train, c.X_train)


def test_omniglot_store_and_runs(cache):
    store = get_dataset("omniglot").load()
    assert isinstance(store, ImageClassStore)
    assert {k: len(v) for k, v in store.splits.items()} == {"background_small1": 136, "background_small2": 156}
    assert store.n_classes == 242  # Greek and Latin are in both subsets
    assert all(a.shape == (20, 105, 105) and a.dtype == np.uint8 for a in store.images.values())
    assert len(store.runs) == 20
    run = store.runs[0]
    assert run.train_images.shape == run.test_images.shape == (20, 105, 105)
    assert sorted(run.test_labels.tolist()) == list(range(20))
    assert run.test_labels[0] == 7  # run01/test/item01.png -> run01/training/class08.png
    X, y = store.split_arrays("background_small1")
    assert X.shape == (136 * 20, 105, 105) and y.max() == 135


def test_miniimagenet_from_a_configured_mirror(cache, data_server, monkeypatch):
    rng = np.random.default_rng(0)
    monkeypatch.setenv("BENCHOPT_BILEVEL_MIRROR", data_server.url("site"))
    for split in ("train", "validation", "test"):
        blob = pickle.dumps({"image_data": rng.integers(0, 256, (4, 84, 84, 3), dtype=np.uint8),
                             "class_dict": {f"n{split}1": [0, 1], f"n{split}2": [2, 3]}}, protocol=4)
        data_server.files[f"site/miniimagenet/mini-imagenet-cache-{split}.pkl"] = blob
    with pytest.raises(DataError, match="expected 64 classes x 600 images"):
        get_dataset("miniimagenet").load(splits=("train",), progress=False)
    store = get_dataset("miniimagenet").load(strict=False, progress=False)
    assert store.splits["validation"] == ["nvalidation1", "nvalidation2"]
    assert store.images["ntest2"].shape == (2, 84, 84, 3)
    assert set(store.sha256) == {f"mini-imagenet-cache-{s}.pkl" for s in ("train", "validation", "test")}


def test_offline_download_only_dataset_names_url_and_path(cache, monkeypatch):
    monkeypatch.setenv("BENCHOPT_BILEVEL_OFFLINE", "1")
    with pytest.raises(DataError) as err:
        get_dataset("mnist").load()
    msg = str(err.value)
    assert "https://" in msg and "train-images-idx3-ubyte.gz" in msg
    assert str(cache / "mnist" / "train-images-idx3-ubyte.gz") in msg


def test_cifar10_jpeg_from_root_option(cache, tmp_path):
    with pytest.raises(DataError, match="BENCHOPT_BILEVEL_CIFAR10_JPEG"):
        get_dataset("cifar10_jpeg").load()
    (tmp_path / "train.tar.gz").write_bytes(b"not the archive")
    with pytest.raises(DataError, match="checksum|size mismatch"):
        get_dataset("cifar10_jpeg").load(root=tmp_path)


FASHION = Path("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz")


@pytest.mark.skipif(not FASHION.exists(), reason="apt-get install dataset-fashion-mnist")
def test_fashion_mnist_from_debian_verifies_decompressed_bytes(cache):
    ds = get_dataset("fashion_mnist").load()
    assert ds.source == "debian" and ds.X_train.shape == (60_000, 784) and ds.X_test.shape == (10_000, 784)
    assert np.bincount(ds.y_test).tolist() == [1_000] * 10
    assert ds.sha256["train-images-idx3-ubyte.gz"].startswith("c59f468a")


@pytest.mark.skipif(importlib.util.find_spec("sklearn") is None, reason="pip install scikit-learn")
@pytest.mark.parametrize("name,shape,k", [("breast_cancer", (569, 30), 2), ("digits", (1797, 64), 10)])
def test_sklearn_datasets(name, shape, k):
    ds = get_dataset(name).load()
    assert len(ds.X_train) + len(ds.X_test) == shape[0] and ds.X_train.shape[1] == shape[1]
    assert ds.n_classes == k and ds.source == "scikit-learn"
    st = ds.standardized()
    np.testing.assert_allclose(st.X_train.mean(axis=0), 0, atol=1e-4)


def test_sklearn_missing_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn", None)  # makes `import sklearn...` fail
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(DataError, match="pip install scikit-learn"):
        get_dataset("digits").load()
    assert "digits" in [i.name for i in list_datasets()]  # listing never needs it
