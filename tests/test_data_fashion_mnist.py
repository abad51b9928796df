"""Tests for zoo.data.fashion_mnist (IDX reader, lookup, fallback, splits)."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from zoo.data import fashion_mnist as fm


def write_idx(path: Path, arr: np.ndarray, code: int, *, gz: bool = False) -> Path:
    be = arr.astype(arr.dtype.newbyteorder(">"))
    header = bytes([0, 0, code, arr.ndim]) + np.array(arr.shape, ">u4").tobytes()
    data = header + be.tobytes()
    if gz:
        data = gzip.compress(data)
    path.write_bytes(data)
    return path


def make_fake_dir(root: Path, n_train: int = 12, n_test: int = 5, gz: bool = True) -> Path:
    rng = np.random.default_rng(0)
    suffix = ".gz" if gz else ""
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        x = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        y = (np.arange(n) % 10).astype(np.uint8)
        write_idx(root / f"{prefix}-images-idx3-ubyte{suffix}", x, 0x08, gz=gz)
        write_idx(root / f"{prefix}-labels-idx1-ubyte{suffix}", y, 0x08, gz=gz)
    return root


def test_label_names():
    assert len(fm.LABEL_NAMES) == 10
    assert fm.LABEL_NAMES[0] == "T-shirt/top" and fm.LABEL_NAMES[9] == "Ankle boot"


@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_roundtrip(tmp_path, gz):
    x = np.random.default_rng(1).integers(0, 256, (3, 5, 7), dtype=np.uint8)
    assert np.array_equal(fm.read_idx(write_idx(tmp_path / "a", x, 0x08, gz=gz)), x)
    ints = np.array([-5, 0, 70000], np.int32)
    got = fm.read_idx(write_idx(tmp_path / "b", ints, 0x0C, gz=gz))
    assert got.dtype == np.int32 and got.dtype.isnative and np.array_equal(got, ints)
    floats = np.linspace(-1, 1, 6, dtype=np.float32).reshape(2, 3)
    assert np.array_equal(fm.read_idx(write_idx(tmp_path / "c", floats, 0x0D, gz=gz)), floats)


def test_read_idx_errors(tmp_path):
    bad_magic = tmp_path / "bad_magic"
    bad_magic.write_bytes(b"\x01\x02\x08\x01" + b"\x00" * 8)
    with pytest.raises(ValueError, match="bad_magic.*magic"):
        fm.read_idx(bad_magic)
    bad_code = tmp_path / "bad_code"
    bad_code.write_bytes(b"\x00\x00\x07\x01\x00\x00\x00\x01\x00")
    with pytest.raises(ValueError, match="bad_code.*type code"):
        fm.read_idx(bad_code)
    short = write_idx(tmp_path / "short.gz", np.zeros((4, 4), np.uint8), 0x08, gz=True)
    raw = gzip.decompress(short.read_bytes())[:-3]
    short.write_bytes(gzip.compress(raw))
    with pytest.raises(ValueError, match="short.gz.*data bytes"):
        fm.read_idx(short)
    header_only = tmp_path / "header"
    header_only.write_bytes(b"\x00\x00\x08\x03\x00\x00")
    with pytest.raises(ValueError, match="header.*truncated"):
        fm.read_idx(header_only)
    crafted = tmp_path / "crafted"  # dims whose product wraps around int64 to 0: a numpy reshape error named no file
    crafted.write_bytes(b"\x00\x00\x08\x04" + b"\x00\x01\x00\x00" * 4)
    with pytest.raises(ValueError, match=r"crafted' has 0 data bytes but its header dims \(65536, 65536, 65536, 65536\) "
                       r"with dtype uint8 need 18446744073709551616"):
        fm.read_idx(crafted)
    corrupt_gz = tmp_path / "corrupt.gz"
    corrupt_gz.write_bytes(b"\x1f\x8b" + b"garbage")
    with pytest.raises(ValueError, match="corrupt.gz"):
        fm.read_idx(corrupt_gz)


@pytest.mark.parametrize("gz", [False, True])
def test_find_and_load_from_dir(tmp_path, monkeypatch, gz):
    make_fake_dir(tmp_path, gz=gz)
    monkeypatch.delenv(fm.ENV_VAR, raising=False)
    assert fm.find_data_dir(tmp_path) == tmp_path
    x, y = fm.load_fashion_mnist("train", data_dir=tmp_path)
    assert x.shape == (12, 28, 28, 1) and x.dtype == np.uint8
    assert y.shape == (12,) and y.dtype == np.uint8
    x, y = fm.load_fashion_mnist("test", data_dir=tmp_path, limit=3)
    assert x.shape == (3, 28, 28, 1) and y.tolist() == [0, 1, 2]
    monkeypatch.setenv(fm.ENV_VAR, str(tmp_path))
    assert fm.find_data_dir() == tmp_path


def test_find_data_dir_incomplete(tmp_path):
    make_fake_dir(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    assert fm.find_data_dir(tmp_path) is None
    with pytest.raises(FileNotFoundError, match="t10k-labels"):
        fm.load_fashion_mnist("train", data_dir=tmp_path)


def test_a_damaged_deflate_stream_is_reported_with_its_file(tmp_path):
    path = make_fake_dir(tmp_path) / "t10k-images-idx3-ubyte.gz"
    data = bytearray(path.read_bytes())
    data[10] ^= 0xFF  # the first byte of the deflate stream: an invalid block type (zlib.error)
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="Could not read IDX file .*t10k-images-idx3-ubyte.gz"):
        fm.read_idx(path)


def test_fashion_mnist_dir_set_is_the_only_folder_looked_in(tmp_path, monkeypatch):
    (tmp_path / "debian").mkdir()
    (tmp_path / "partial").mkdir()
    debian = make_fake_dir(tmp_path / "debian")  # a complete folder the variable must not fall back to
    monkeypatch.setattr(fm, "DEFAULT_DATA_DIR", debian)
    partial = tmp_path / "partial"
    make_fake_dir(partial)
    (partial / "train-images-idx3-ubyte.gz").unlink()
    for chosen in (partial, tmp_path / "misspelt"):
        monkeypatch.setenv(fm.ENV_VAR, str(chosen))
        assert fm.find_data_dir() is None
        with pytest.raises(FileNotFoundError, match=rf"\$FASHION_MNIST_DIR '{chosen}'.*Unset \$FASHION_MNIST_DIR"):
            fm.load_fashion_mnist("test")
    monkeypatch.delenv(fm.ENV_VAR)
    assert fm.find_data_dir() == debian


def test_idx_files_of_another_kind_are_refused_naming_both_files(tmp_path, monkeypatch):
    monkeypatch.delenv(fm.ENV_VAR, raising=False)
    make_fake_dir(tmp_path)
    images, labels = tmp_path / "t10k-images-idx3-ubyte.gz", tmp_path / "t10k-labels-idx1-ubyte.gz"
    original = images.read_bytes()
    images.write_bytes(labels.read_bytes())  # a labels file where the images belong
    with pytest.raises(ValueError, match=r"shapes for split='test' in '.*t10k-images.*' and '.*t10k-labels.*': images \(5,\)"):
        fm.load_fashion_mnist("test", data_dir=tmp_path)
    images.write_bytes(original)
    write_idx(labels, np.array([0, 1, 200, 3, 4], np.uint8), 0x08, gz=True)
    with pytest.raises(ValueError, match="labels uint8 up to 200 \\(expected uint8 below 10\\)"):
        fm.load_fashion_mnist("test", data_dir=tmp_path)
    write_idx(images, np.zeros((5, 28, 28), np.float32), 0x0D, gz=True)
    write_idx(labels, np.arange(5, dtype=np.uint8), 0x08, gz=True)
    with pytest.raises(ValueError, match="images float32 \\(expected uint8\\)"):
        fm.load_fashion_mnist("test", data_dir=tmp_path)


def test_a_validation_fraction_that_rounds_to_no_sample_is_reported_as_the_fraction():
    with pytest.raises(ValueError, match=r"`val_fraction` of 4 samples gives 0 validation samples.*Received: val_fraction=0.1"):
        fm.train_val_split(np.zeros((4, 2)), np.arange(4), val_fraction=0.1)


def test_bad_split_and_limit(tmp_path):
    make_fake_dir(tmp_path)
    with pytest.raises(ValueError, match="Received: split='x'"):
        fm.load_fashion_mnist("x", data_dir=tmp_path)
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="Received: limit="):
            fm.load_fashion_mnist("train", data_dir=tmp_path, limit=bad)


def test_fallback_error_message(tmp_path, monkeypatch):
    import keras

    monkeypatch.delenv(fm.ENV_VAR, raising=False)
    monkeypatch.setattr(fm, "DEFAULT_DATA_DIR", tmp_path / "nowhere")

    def boom():
        raise OSError("no network")

    monkeypatch.setattr(keras.datasets.fashion_mnist, "load_data", boom)
    with pytest.raises(FileNotFoundError) as info:
        fm.load_fashion_mnist("test")
    msg = str(info.value)
    for part in ("nowhere", "FASHION_MNIST_DIR", "dataset-fashion-mnist",
                 "keras.datasets.fashion_mnist.load_data", "no network", "data_dir="):
        assert part in msg


def test_keras_fallback_used(tmp_path, monkeypatch):
    import keras

    monkeypatch.delenv(fm.ENV_VAR, raising=False)
    monkeypatch.setattr(fm, "DEFAULT_DATA_DIR", tmp_path / "nowhere")
    fake = (np.ones((4, 28, 28), np.uint8), np.arange(4, dtype=np.uint8))
    monkeypatch.setattr(keras.datasets.fashion_mnist, "load_data", lambda: (fake, fake))
    x, y = fm.load_fashion_mnist("train", limit=2)
    assert x.shape == (2, 28, 28, 1) and y.tolist() == [0, 1]


@pytest.mark.skipif(
    fm.find_data_dir(fm.DEFAULT_DATA_DIR) is None,
    reason=f"{fm.DEFAULT_DATA_DIR} missing (apt-get install {fm.DEBIAN_PACKAGE})",
)
def test_real_debian_data():
    x, y = fm.load_fashion_mnist("test", data_dir=fm.DEFAULT_DATA_DIR)
    assert x.shape == (10000, 28, 28, 1) and x.dtype == np.uint8
    assert y.shape == (10000,) and np.bincount(y).tolist() == [1000] * 10
    assert x.max() == 255 and x.min() == 0
    x, y = fm.load_fashion_mnist("train", data_dir=fm.DEFAULT_DATA_DIR, limit=500)
    assert x.shape == (500, 28, 28, 1) and 0 <= y.min() and y.max() <= 9


def test_split_deterministic_disjoint_stratified():
    y = np.repeat(np.arange(10), 100).astype(np.uint8)
    x = np.arange(len(y))
    a = fm.train_val_split(x, y, val_size=50, seed=3)
    b = fm.train_val_split(x, y, val_size=50, seed=3)
    for u, v in zip(a, b):
        assert np.array_equal(u, v)
    x_tr, y_tr, x_val, y_val = a
    assert len(x_val) == 50 and len(x_tr) == 950
    assert np.intersect1d(x_tr, x_val).size == 0
    assert np.array_equal(np.sort(np.concatenate([x_tr, x_val])), x)
    assert np.bincount(y_val, minlength=10).tolist() == [5] * 10
    assert np.array_equal(y[x_tr], y_tr)
    c = fm.train_val_split(x, y, val_size=50, seed=4)
    assert not np.array_equal(c[2], x_val)


def test_split_fraction_and_unstratified():
    y = np.array([0] * 7 + [1] * 3)
    tr, va = fm.train_val_indices(y, val_fraction=0.5, seed=0)
    assert len(va) == 5 and np.intersect1d(tr, va).size == 0
    assert np.bincount(y[va]).tolist() == [4, 1]  # quotas 3.5/1.5, tie -> first class
    tr, va = fm.train_val_indices(y, val_size=4, stratify=False, seed=1)
    assert len(va) == 4 and len(tr) == 6
    tr, va = fm.train_val_indices(np.zeros(100), seed=0)  # default 10 %
    assert len(va) == 10


def test_split_errors():
    y = np.arange(10)
    with pytest.raises(ValueError, match="only one"):
        fm.train_val_indices(y, val_fraction=0.1, val_size=1)
    with pytest.raises(ValueError, match="Received: val_fraction=1.5"):
        fm.train_val_indices(y, val_fraction=1.5)
    with pytest.raises(ValueError, match="Received: val_size=10"):
        fm.train_val_indices(y, val_size=10)
    with pytest.raises(ValueError, match="same length"):
        fm.train_val_split(np.zeros(3), y)
