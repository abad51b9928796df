"""Fashion-MNIST loading from IDX files, with a Keras download fallback.

Where the raw IDX files (gzipped or not) are looked for: the first of these that is given,
and only there:

1. the ``data_dir`` argument,
2. the ``$FASHION_MNIST_DIR`` environment variable (when set),
3. ``/usr/share/datasets/fashion-mnist`` (Debian package ``dataset-fashion-mnist``).

A folder given by 1 or 2 that lacks the files is an error; when the Debian folder lacks them,
the loader falls back to ``keras.datasets.fashion_mnist.load_data()``, which downloads the data.

Example:
    >>> x, y = load_fashion_mnist("test", limit=8)  # doctest: +SKIP
    >>> x.shape, x.dtype, y.shape  # doctest: +SKIP
    ((8, 28, 28, 1), dtype('uint8'), (8,))
"""

from __future__ import annotations

import gzip
import math
import os
import zlib
from pathlib import Path
from typing import Literal

import numpy as np

__all__ = [
    "DEBIAN_PACKAGE",
    "DEFAULT_DATA_DIR",
    "ENV_VAR",
    "LABEL_NAMES",
    "SPLIT_SIZES",
    "check_data_dir",
    "check_limit",
    "find_data_dir",
    "load_fashion_mnist",
    "read_idx",
    "train_val_indices",
    "train_val_split",
]

LABEL_NAMES: tuple[str, ...] = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
ENV_VAR = "FASHION_MNIST_DIR"
DEFAULT_DATA_DIR = Path("/usr/share/datasets/fashion-mnist")
DEBIAN_PACKAGE = "dataset-fashion-mnist"

# IDX type codes -> big-endian numpy dtypes.
_IDX_DTYPES: dict[int, str] = {
    0x08: "u1",
    0x09: "i1",
    0x0B: ">i2",
    0x0C: ">i4",
    0x0D: ">f4",
    0x0E: ">f8",
}
_SPLIT_PREFIX = {"train": "train", "test": "t10k"}
SPLIT_SIZES = {"train": 60000, "test": 10000}
Split = Literal["train", "test"]


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an IDX file (optionally gzipped) into a native-endian array.

    The gzip format is detected from the file content, not the name.

    Example:
        >>> path = "/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz"
        >>> read_idx(path).shape  # doctest: +SKIP
        (10000,)
    """
    path = Path(path)
    with open(path, "rb") as f:
        head = f.read(2)
    opener = gzip.open if head == b"\x1f\x8b" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError, zlib.error) as e:  # zlib.error: a damaged deflate stream
        raise ValueError(f"Could not read IDX file '{path}': {e}") from e
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise ValueError(
            f"'{path}' is not an IDX file: bad magic number "
            f"{raw[:4].hex() or '<empty>'} (expected 0000<type><ndim>)."
        )
    code, ndim = raw[2], raw[3]
    if code not in _IDX_DTYPES:
        raise ValueError(
            f"'{path}' is not an IDX file: unknown type code 0x{code:02x} "
            f"(expected one of {', '.join(f'0x{c:02x}' for c in _IDX_DTYPES)})."
        )
    if ndim == 0:
        raise ValueError(f"'{path}' is not a valid IDX file: ndim is 0.")
    header_len = 4 + 4 * ndim
    if len(raw) < header_len:
        raise ValueError(
            f"'{path}' is truncated: header needs {header_len} bytes, "
            f"file has {len(raw)}."
        )
    dims = tuple(int(d) for d in np.frombuffer(raw, ">u4", ndim, offset=4))
    dtype = np.dtype(_IDX_DTYPES[code])
    expected = math.prod(dims) * dtype.itemsize  # Python ints: a crafted header cannot wrap around
    if len(raw) - header_len != expected:
        raise ValueError(
            f"'{path}' has {len(raw) - header_len} data bytes but its header "
            f"dims {dims} with dtype {dtype} need {expected}."
        )
    data = np.frombuffer(raw, dtype, offset=header_len).reshape(dims)
    return data.astype(dtype.newbyteorder("="), copy=True)


def _idx_file(directory: Path, stem: str) -> Path | None:
    """Return the existing IDX file for ``stem`` (``.gz`` or raw, ``-``/``.`` idx)."""
    alt = stem.replace("-idx", ".idx")
    for name in (f"{stem}.gz", stem, f"{alt}.gz", alt):
        p = directory / name
        if p.is_file():
            return p
    return None


def _split_files(directory: Path, split: str) -> tuple[Path, Path] | None:
    prefix = _SPLIT_PREFIX[split]
    images = _idx_file(directory, f"{prefix}-images-idx3-ubyte")
    labels = _idx_file(directory, f"{prefix}-labels-idx1-ubyte")
    if images is None or labels is None:
        return None
    return images, labels


def _candidate_dirs(data_dir: str | os.PathLike[str] | None) -> list[tuple[str, Path]]:
    """The folders to look in: ``data_dir``, else ``$FASHION_MNIST_DIR`` (each the only one when
    given: a user's choice is never passed over silently), else the Debian package's."""
    if data_dir is not None:
        return [("data_dir argument", Path(data_dir))]
    env = os.environ.get(ENV_VAR)
    if env:
        return [(f"${ENV_VAR}", Path(env))]
    return [(f"Debian package {DEBIAN_PACKAGE}", DEFAULT_DATA_DIR)]


def find_data_dir(data_dir: str | os.PathLike[str] | None = None) -> Path | None:
    """Return the first directory holding all four Fashion-MNIST IDX files.

    Candidates: ``data_dir`` if given (then only it), else ``$FASHION_MNIST_DIR`` if set (then
    only it), else ``/usr/share/datasets/fashion-mnist``. Returns ``None`` if none qualifies.

    Example:
        >>> find_data_dir()  # doctest: +SKIP
        PosixPath('/usr/share/datasets/fashion-mnist')
    """
    for _, d in _candidate_dirs(data_dir):
        if d.is_dir() and all(_split_files(d, s) is not None for s in _SPLIT_PREFIX):
            return d
    return None


def check_data_dir(data_dir: str | os.PathLike[str] | None = None) -> Path | None:
    """The folder :func:`load_fashion_mnist` reads (``None``: the Keras download is tried), or
    ``FileNotFoundError`` when a folder the user chose (``data_dir``, ``$FASHION_MNIST_DIR``)
    lacks the files: checked before a training run opens its folder.

    Example:
        >>> check_data_dir("no-such-folder")
        Traceback (most recent call last):
        ...
        FileNotFoundError: No Fashion-MNIST IDX files for both splits in data_dir argument 'no-such-folder'. ...
    """
    found = find_data_dir(data_dir)
    if found is None and (data_dir is not None or os.environ.get(ENV_VAR)):
        (what, folder), = _candidate_dirs(data_dir)
        raise FileNotFoundError(
            f"No Fashion-MNIST IDX files for both splits in {what} '{folder}'. "
            "Expected train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz], "
            "t10k-images-idx3-ubyte[.gz] and t10k-labels-idx1-ubyte[.gz]."
            + (f" Unset ${ENV_VAR} to use the {DEBIAN_PACKAGE} package's folder." if data_dir is None else "")
        )
    return found


def _check_split_limit(split: object, limit: object) -> None:
    if split not in _SPLIT_PREFIX:
        raise ValueError(f"`split` must be 'train' or 'test'. Received: split={split!r}")
    check_limit(limit)


def check_limit(limit: object) -> None:
    """Refuse a ``limit`` (images kept per split) that is not ``None`` or a positive int.

    Example:
        >>> check_limit(256)
        >>> check_limit(0)
        Traceback (most recent call last):
        ...
        ValueError: `limit` must be None or a positive int. Received: limit=0
    """
    if limit is not None and (
        isinstance(limit, bool) or not isinstance(limit, (int, np.integer)) or limit < 1
    ):
        raise ValueError(
            f"`limit` must be None or a positive int. Received: limit={limit!r}"
        )


def _load_from_keras(split: str) -> tuple[np.ndarray, np.ndarray]:
    import keras  # Imported lazily: only needed for the download fallback.

    (x_tr, y_tr), (x_te, y_te) = keras.datasets.fashion_mnist.load_data()
    return (x_tr, y_tr) if split == "train" else (x_te, y_te)


def load_fashion_mnist(
    split: Split = "train",
    data_dir: str | os.PathLike[str] | None = None,
    limit: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Load one Fashion-MNIST split as ``(images uint8 (N,28,28,1), labels uint8 (N,))``.

    ``limit`` keeps the first ``limit`` samples. An explicit ``data_dir`` (or a set
    ``$FASHION_MNIST_DIR``) that lacks the files raises ``FileNotFoundError`` (no download fallback).

    Example:
        >>> x, y = load_fashion_mnist("train", limit=100)  # doctest: +SKIP
        >>> x.shape, int(y.max()) < 10  # doctest: +SKIP
        ((100, 28, 28, 1), True)
    """
    _check_split_limit(split, limit)
    found = check_data_dir(data_dir)
    if found is not None:
        img_path, lbl_path = _split_files(found, split)  # type: ignore[misc]
        x, y = read_idx(img_path), read_idx(lbl_path)
    else:
        try:
            x, y = _load_from_keras(split)
        except Exception as e:  # noqa: BLE001 - re-raised with context below.
            tried = "; ".join(
                f"{what}: {d}" for what, d in _candidate_dirs(None)
            )
            if not os.environ.get(ENV_VAR):
                tried += f"; ${ENV_VAR} (not set)"
            raise FileNotFoundError(
                "Fashion-MNIST could not be found. Tried IDX directories ("
                f"{tried}) and the download fallback "
                f"keras.datasets.fashion_mnist.load_data(), which failed with "
                f"{type(e).__name__}: {e}. To fix: `apt-get install {DEBIAN_PACKAGE}`, "
                f"or set ${ENV_VAR} / pass data_dir= to a directory with the four "
                "IDX files, or allow network access for the Keras download."
            ) from e
    source = f"'{img_path}' and '{lbl_path}'" if found is not None else "the Keras download"
    if x.ndim != 3 or x.shape[1:] != (28, 28) or y.shape != (x.shape[0],):
        raise ValueError(
            f"Unexpected Fashion-MNIST shapes for split={split!r} in {source}: "
            f"images {x.shape} (expected (N, 28, 28)), labels {y.shape} (expected (N,))."
        )
    if x.dtype != np.uint8 or y.dtype != np.uint8 or (y.size and int(y.max()) >= len(LABEL_NAMES)):
        raise ValueError(
            f"Unexpected Fashion-MNIST values for split={split!r} in {source}: images {x.dtype} "
            f"(expected uint8), labels {y.dtype} up to {int(y.max()) if y.size else None} "
            f"(expected uint8 below {len(LABEL_NAMES)})."
        )
    if limit is not None:
        x, y = x[:limit], y[:limit]
    return (
        np.ascontiguousarray(x, dtype=np.uint8)[..., None],
        np.ascontiguousarray(y, dtype=np.uint8),
    )


def train_val_indices(
    labels: np.ndarray,
    *,
    val_fraction: float | None = None,
    val_size: int | None = None,
    seed: int = 0,
    stratify: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic disjoint ``(train_idx, val_idx)`` (both sorted) over ``labels``.

    Give at most one of ``val_fraction``/``val_size`` (default ``val_fraction=0.1``).
    With ``stratify`` each class contributes in proportion (largest remainder).

    Example:
        >>> tr, va = train_val_indices(np.arange(100) % 10, val_size=20)
        >>> len(tr), len(va), len(np.intersect1d(tr, va))
        (80, 20, 0)
    """
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ValueError(f"`labels` must be 1-D. Received: shape={labels.shape}")
    n = labels.shape[0]
    if val_fraction is not None and val_size is not None:
        raise ValueError(
            "Pass only one of `val_fraction` and `val_size`. "
            f"Received: val_fraction={val_fraction!r}, val_size={val_size!r}"
        )
    if val_size is None:
        frac = 0.1 if val_fraction is None else val_fraction
        if not 0.0 < frac < 1.0:
            raise ValueError(
                f"`val_fraction` must be in (0, 1). Received: val_fraction={frac!r}"
            )
        val_size = int(round(frac * n))
        if not 0 < val_size < n:
            raise ValueError(
                f"`val_fraction` of {n} samples gives {val_size} validation samples; it needs between 1 "
                f"and {n - 1}. Received: val_fraction={frac!r}"
            )
    if isinstance(val_size, bool) or not 0 < int(val_size) < n:
        raise ValueError(
            f"`val_size` must be in [1, {n - 1}] for {n} samples. "
            f"Received: val_size={val_size!r}"
        )
    val_size = int(val_size)
    rng = np.random.default_rng(seed)
    perm = rng.permutation(n)
    if not stratify:
        val = perm[:val_size]
    else:
        classes, inverse, counts = np.unique(
            labels, return_inverse=True, return_counts=True
        )
        take = _class_quotas(counts, val_size)
        # Rank of each permuted sample within its class (first seen -> rank 0).
        perm_cls = inverse[perm]
        by_cls = np.argsort(perm_cls, kind="stable")
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        rank = np.empty(n, np.int64)
        rank[by_cls] = np.arange(n) - np.repeat(starts, counts)
        val = perm[rank < take[perm_cls]]
    is_val = np.zeros(n, bool)
    is_val[val] = True
    return np.flatnonzero(~is_val), np.flatnonzero(is_val)


def _class_quotas(counts: np.ndarray, val_size: int) -> np.ndarray:
    """Validation samples per class: in proportion (largest remainder), every class keeping at
    least one training sample; the share a class cannot give goes to the next largest remainders.
    When the classes cannot spare ``val_size`` samples (a few samples, e.g. ``--limit 2``), the
    plain proportional shares (picture folders refuse that case first: ``zoo.data.folder``)."""
    quota = counts * (val_size / counts.sum())
    floor = np.floor(quota).astype(np.int64)
    order = np.argsort(-(quota - floor), kind="stable")
    capacity = np.maximum(counts - 1, 0)
    if val_size > int(capacity.sum()):
        take = floor.copy()
        take[order[: val_size - int(take.sum())]] += 1
        return take
    take = np.minimum(floor, capacity)
    missing = val_size - int(take.sum())
    while missing:  # one more each, largest remainder first, where a class can spare one
        for index in order:
            if missing and take[index] < capacity[index]:
                take[index] += 1
                missing -= 1
    return take


def train_val_split(
    x: np.ndarray,
    y: np.ndarray,
    *,
    val_fraction: float | None = None,
    val_size: int | None = None,
    seed: int = 0,
    stratify: bool = True,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Carve a validation set out of a training split: ``(x_tr, y_tr, x_val, y_val)``.

    Deterministic for a given ``seed``; only the arrays passed in are used,
    so the test split is never touched. See :func:`train_val_indices`.

    Example:
        >>> x, y = np.zeros((100, 28, 28, 1), np.uint8), np.arange(100) % 10
        >>> x_tr, y_tr, x_val, y_val = train_val_split(x, y, val_size=10)
        >>> len(x_tr), np.bincount(y_val).tolist()
        (90, [1, 1, 1, 1, 1, 1, 1, 1, 1, 1])
    """
    x, y = np.asarray(x), np.asarray(y)
    if x.shape[0] != y.shape[0]:
        raise ValueError(
            f"`x` and `y` must have the same length. Received: {x.shape[0]} and {y.shape[0]}"
        )
    tr, va = train_val_indices(
        y, val_fraction=val_fraction, val_size=val_size, seed=seed, stratify=stratify
    )
    return x[tr], y[tr], x[va], y[va]
