"""``keras.utils.PyDataset`` over in-memory numpy arrays (no ``tf.*``).

Example:
    >>> x = np.zeros((10, 28, 28, 1), np.uint8); y = np.arange(10)
    >>> ds = ArrayDataset(x, y, batch_size=4, rescale=1 / 255)
    >>> len(ds), ds[0][0].shape, ds[0][0].dtype
    (3, (4, 28, 28, 1), dtype('float32'))
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any, Literal

import keras
import numpy as np

from zoo.data.resize import resize_batch

__all__ = ["ArrayDataset", "EpochRemainder"]

Targets = np.ndarray | Mapping[str, np.ndarray] | None


class ArrayDataset(keras.utils.PyDataset):
    """Batches ``(x, y)`` from numpy arrays with seeded per-epoch shuffling.

    * ``y`` may be an array, a dict of arrays (two-output models, e.g.
      ``{"class": labels, "box": boxes}``) or ``None`` (yields ``x`` only).
    * The order of epoch ``e`` is ``default_rng([seed, e]).permutation(N)``;
      the epoch advances in ``on_epoch_end`` or via :meth:`set_epoch`. (Keras
      may call ``on_epoch_end`` once more than the number of fit epochs, e.g.
      when it builds the model from a first batch or starts workers; the
      sequence is still deterministic for a given setup.)
    * ``augmenter(x_batch, rng)`` is applied to the raw (e.g. uint8) batch with
      ``rng = default_rng([seed, epoch, index])``, so results do not depend on
      worker scheduling. If ``y`` is a dict holding ``box_key``, the augmenter
      is called as ``augmenter(x, rng, boxes=y[box_key])`` and must return
      ``(x, boxes)`` (see ``zoo.data.augment.Augmenter``).
    * :meth:`batch` gives batch ``index`` of any ``epoch`` without moving the dataset's own
      epoch; :class:`EpochRemainder` serves the rest of one epoch from a batch on (a run resumed
      in the middle of an epoch).
    * ``image_size`` (progressive resizing): when set, batches are resized after augmentation
      to ``image_size x image_size`` with ``zoo.data.resize.resize_batch``; ``None`` keeps the
      arrays' size. A training loop changes it between phases with :meth:`set_image_size`.
    * ``dtype="float32"`` casts ``x`` (times ``rescale`` if given);
      ``dtype="uint8"`` keeps it as is.
    * ``**kwargs`` (``workers``, ``use_multiprocessing``, ``max_queue_size``)
      go to ``keras.utils.PyDataset``.

    Example:
        >>> ds = ArrayDataset(np.zeros((5, 2, 2, 1)), {"class": np.arange(5),
        ...                   "box": np.zeros((5, 4))}, batch_size=2,
        ...                   drop_remainder=True)
        >>> len(ds), sorted(ds[1][1])
        (2, ['box', 'class'])
    """

    def __init__(
        self,
        x: np.ndarray,
        y: Targets = None,
        *,
        batch_size: int = 128,
        shuffle: bool = True,
        seed: int = 0,
        augmenter: Callable[..., Any] | None = None,
        dtype: Literal["float32", "uint8"] = "float32",
        rescale: float | None = None,
        drop_remainder: bool = False,
        box_key: str = "box",
        image_size: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.x = np.asarray(x)
        n = len(self.x)
        if isinstance(y, Mapping):
            self.y: Targets = {k: np.asarray(v) for k, v in y.items()}
            lengths = {k: len(v) for k, v in self.y.items()}
        elif y is not None:
            self.y = np.asarray(y)
            lengths = {"y": len(self.y)}
        else:
            self.y, lengths = None, {}
        if any(v != n for v in lengths.values()):
            raise ValueError(f"All arrays need {n} samples (len(x)). Received: {lengths}")
        if isinstance(batch_size, bool) or int(batch_size) < 1:
            raise ValueError(f"`batch_size` must be >= 1. Received: batch_size={batch_size!r}")
        if dtype not in ("float32", "uint8"):
            raise ValueError(f"`dtype` must be 'float32' or 'uint8'. Received: dtype={dtype!r}")
        if dtype == "uint8" and rescale is not None:
            raise ValueError(f"`rescale` needs dtype='float32'. Received: rescale={rescale!r}")
        if drop_remainder and n < batch_size:
            raise ValueError(
                f"drop_remainder=True with {n} samples < batch_size={batch_size} "
                "yields no batch."
            )
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.seed = seed
        self.augmenter = augmenter
        self.dtype = dtype
        self.rescale = rescale
        self.drop_remainder = drop_remainder
        self.box_key = box_key
        self.image_size: int | None = None
        self.set_image_size(image_size)
        self.epoch = 0
        self._order = self._make_order()

    def _make_order(self, epoch: int | None = None) -> np.ndarray:
        n = len(self.x)
        if not self.shuffle:
            return np.arange(n)
        return np.random.default_rng([self.seed, self.epoch if epoch is None else epoch]).permutation(n)

    def set_epoch(self, epoch: int) -> None:
        """Select the shuffling/augmentation state of ``epoch`` (0-based)."""
        self.epoch = int(epoch)
        self._order = self._make_order()

    def on_epoch_end(self) -> None:
        """Advance to the next epoch's order."""
        self.set_epoch(self.epoch + 1)

    def set_image_size(self, size: int | None) -> None:
        """Resize the batches to ``size x size`` from now on (``None``: the arrays' own size).

        Example:
            >>> ds = ArrayDataset(np.zeros((4, 28, 28, 1)), batch_size=2)
            >>> ds.set_image_size(16); ds[0].shape
            (2, 16, 16, 1)
        """
        if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 1):
            raise ValueError(f"`image_size` must be None or an int >= 1. Received: image_size={size!r}")
        if size is not None and isinstance(self.y, dict) and self.box_key in self.y:
            raise ValueError(
                f"Resizing is for classification batches (boxes are not resized). Received: image_size={size!r}"
            )
        self.image_size = size

    def __len__(self) -> int:
        n = len(self.x)
        return n // self.batch_size if self.drop_remainder else math.ceil(n / self.batch_size)

    def __getitem__(self, index: int) -> Any:
        return self.batch(self.epoch, index)

    def batch(self, epoch: int, index: int) -> Any:
        """Batch ``index`` of ``epoch`` (0-based), whatever the current epoch: the same order,
        augmentation and size as ``self[index]`` during that epoch.

        Example:
            >>> ds = ArrayDataset(np.arange(6).reshape(6, 1), batch_size=2, seed=1)
            >>> second = ds.batch(1, 0); ds.on_epoch_end()
            >>> bool((ds[0] == second).all()), ds.epoch
            (True, 1)
        """
        if not 0 <= index < len(self):
            raise IndexError(f"Batch index {index} out of range for {len(self)} batches.")
        order = self._order if epoch == self.epoch else self._make_order(epoch)
        idx = order[index * self.batch_size : (index + 1) * self.batch_size]
        x = self.x[idx]
        y: Targets
        if isinstance(self.y, dict):
            y = {k: v[idx] for k, v in self.y.items()}
        else:
            y = None if self.y is None else self.y[idx]
        if self.augmenter is not None:
            rng = np.random.default_rng([self.seed, epoch, index])
            if isinstance(y, dict) and self.box_key in y:
                x, y[self.box_key] = self.augmenter(x, rng, boxes=y[self.box_key])
            else:
                x = self.augmenter(x, rng)
        if self.image_size is not None:
            x = resize_batch(x, self.image_size)
        if self.dtype == "float32":
            x = x.astype(np.float32)
            if self.rescale is not None:
                x *= np.float32(self.rescale)
        return x if y is None else (x, y)


class EpochRemainder(keras.utils.PyDataset):
    """The batches of one epoch of ``dataset`` from batch ``first`` on: what a run killed after
    ``first`` batches of that epoch has left to train (``zoo.training.fit.fit_run``).

    Batch ``i`` is ``dataset.batch(epoch, first + i)``; Keras' epoch-end calls do not move it
    (a ``fit`` over it is one epoch), nor the dataset itself.

    Example:
        >>> ds = ArrayDataset(np.arange(8).reshape(8, 1), batch_size=2, seed=1)
        >>> rest = EpochRemainder(ds, epoch=3, first=1)
        >>> len(rest), bool((rest[0] == ds.batch(3, 1)).all())
        (3, True)
    """

    def __init__(self, dataset: ArrayDataset, *, epoch: int, first: int):
        super().__init__(
            workers=dataset.workers, use_multiprocessing=dataset.use_multiprocessing, max_queue_size=dataset.max_queue_size
        )
        whole = len(dataset)
        if isinstance(first, bool) or not isinstance(first, int) or not 0 <= first < whole:
            raise ValueError(f"`first` must be an int in [0, {whole}) (the epoch's batches). Received: first={first!r}")
        if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
            raise ValueError(f"`epoch` must be an int >= 0. Received: epoch={epoch!r}")
        self.dataset, self.epoch, self.first = dataset, epoch, first

    def __len__(self) -> int:
        return len(self.dataset) - self.first

    def __getitem__(self, index: int) -> Any:
        if not 0 <= index < len(self):
            raise IndexError(f"Batch index {index} out of range for {len(self)} batches.")
        return self.dataset.batch(self.epoch, self.first + index)
