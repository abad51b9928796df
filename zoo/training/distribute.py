"""Data-parallel training over every local device, for the JAX and TensorFlow backends.

* JAX: ``keras.distribution.DataParallel`` over ``keras.distribution.list_devices()``, set
  globally with ``keras.distribution.set_distribution`` for the duration of the run (and
  restored afterwards). Variables are replicated, each batch is split along its first axis.
  With ``KERAS_DISTRIBUTION_NUM_PROCESSES`` > 1 (plus ``KERAS_DISTRIBUTION_JOB_ADDRESSES`` and
  ``KERAS_DISTRIBUTION_PROCESS_ID``) ``keras.distribution.initialize()`` joins the hosts first.
* TensorFlow: ``tf.distribute.MirroredStrategy`` over the GPUs, else over the logical CPU
  devices; the model and its optimizer are built and compiled inside ``scope()``.

The batch size stays the global batch size (all replicas together). With
``zoo.training.precision`` (GPU detection), this is the only module of the zoo that touches
``tf.*``. On one CPU, two devices can be simulated: for JAX set
``XLA_FLAGS=--xla_force_host_platform_device_count=2`` before JAX starts; for TensorFlow call
``tf.config.set_logical_device_configuration`` with two configurations before TF starts.

Example:
    >>> with data_parallel() as parallel:             # doctest: +SKIP
    ...     with parallel.scope():
    ...         model = zoo.create("cnn"); model.compile(...)
    ...     model.fit(dataset, epochs=1)
"""

from __future__ import annotations

import contextlib
import os
from typing import Any, Iterator

import keras

__all__ = ["Parallel", "check_batch_divisible", "check_distribute", "check_parallel_split", "data_parallel", "device_count"]

_PARALLEL_BACKENDS = ("jax", "tensorflow")


class Parallel:
    """An active data-parallel setup: ``scope()`` for building, ``num_replicas`` devices.

    Example:
        >>> Parallel(None, 1).num_replicas
        1
    """

    def __init__(self, strategy: Any, num_replicas: int, description: str = "single device"):
        self.strategy = strategy
        self.num_replicas = num_replicas
        self.description = description

    def scope(self) -> contextlib.AbstractContextManager:
        """Where to create and compile the model (a no-op except for TensorFlow)."""
        return self.strategy.scope() if self.strategy is not None else contextlib.nullcontext()


def _multi_host() -> bool:
    return int(os.environ.get("KERAS_DISTRIBUTION_NUM_PROCESSES", "1") or 1) > 1


def _maybe_initialize_multi_host() -> None:
    if _multi_host():
        keras.distribution.initialize()


def _tf_devices() -> list:
    """The devices TensorFlow's MirroredStrategy spans here: the GPUs, else the logical CPUs."""
    import tensorflow as tf

    return tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")


@contextlib.contextmanager
def _jax_parallel() -> Iterator[Parallel]:
    _maybe_initialize_multi_host()
    devices = keras.distribution.list_devices()
    previous = keras.distribution.distribution()
    keras.distribution.set_distribution(keras.distribution.DataParallel(devices=devices))
    try:
        yield Parallel(None, len(devices), f"JAX DataParallel over {len(devices)} device(s)")
    finally:
        keras.distribution.set_distribution(previous)


@contextlib.contextmanager
def _tf_parallel() -> Iterator[Parallel]:
    import tensorflow as tf

    names = [device.name for device in _tf_devices()]
    strategy = tf.distribute.MirroredStrategy(devices=names)
    yield Parallel(strategy, strategy.num_replicas_in_sync, f"tf.distribute.MirroredStrategy over {names}")


@contextlib.contextmanager
def data_parallel(enabled: bool = True, batch_size: int | None = None) -> Iterator[Parallel]:
    """Run the enclosed training data-parallel over all local devices (or not, if disabled).

    Raises ``ValueError`` on backends other than JAX and TensorFlow (:func:`check_distribute`),
    and when the global ``batch_size`` cannot be split equally over the devices found
    (:func:`check_batch_divisible`).

    Example:
        >>> with data_parallel(enabled=False, batch_size=128) as parallel:
        ...     parallel.num_replicas
        1
    """
    if not enabled:
        yield Parallel(None, 1)
        return
    check_distribute(enabled)
    start = _jax_parallel if keras.backend.backend() == "jax" else _tf_parallel
    with start() as parallel:
        if batch_size is not None:
            check_batch_divisible(batch_size, parallel.num_replicas)
        yield parallel


def check_batch_divisible(batch_size: int, num_replicas: int) -> None:
    """Refuse a global batch that the devices of a data-parallel run cannot share equally.

    Example:
        >>> check_batch_divisible(256, 2)
        >>> check_batch_divisible(255, 2)
        Traceback (most recent call last):
        ...
        ValueError: A distributed run splits each batch equally over its 2 devices. Received: batch_size=255. Use a multiple of 2 (e.g. --batch-size 256).
    """
    if num_replicas > 1 and batch_size % num_replicas:
        suggestion = -(-batch_size // num_replicas) * num_replicas
        raise ValueError(
            f"A distributed run splits each batch equally over its {num_replicas} devices. Received: "
            f"batch_size={batch_size}. Use a multiple of {num_replicas} (e.g. --batch-size {suggestion})."
        )


def device_count(enabled: bool) -> int | None:
    """How many devices :func:`data_parallel` would split each batch over (1 when not enabled),
    for the checks made before a run folder is touched; ``None`` for a multi-host JAX run, whose
    devices are known only once the hosts have joined.

    Example:
        >>> device_count(False)
        1
    """
    if not enabled:
        return 1
    check_distribute(enabled)
    if keras.backend.backend() == "jax":
        return None if _multi_host() else len(keras.distribution.list_devices())
    return len(_tf_devices())


def check_parallel_split(
    num_replicas: int | None, *, batch_size: int, train_count: int, val_count: int, train_hint: str, val_hint: str
) -> None:
    """Refuse, before a run starts, a data-parallel run whose batches its devices cannot share:
    fewer training or validation images than devices (each device needs one of every batch), a
    training split smaller than one batch (trained as one batch of them all) that is no multiple
    of the devices, or a global batch that is no multiple of them (:func:`check_batch_divisible`).
    The hints say how to get other image counts.

    Example:
        >>> check_parallel_split(2, batch_size=8, train_count=8, val_count=1, train_hint="-", val_hint="raise --val-fraction")
        Traceback (most recent call last):
        ...
        ValueError: A distributed run splits each validation batch over its 2 devices, and the validation split has 1 image(s): raise --val-fraction, or train on one device. Received: val_count=1
    """
    if not num_replicas or num_replicas < 2:
        return
    if train_count < num_replicas or (train_count < batch_size and train_count % num_replicas):
        why = ("fewer than the devices" if train_count < num_replicas else
               f"trained as one batch (fewer than batch_size={batch_size}) that is no multiple of the devices")
        raise ValueError(
            f"A distributed run splits each batch over its {num_replicas} devices, and the training split has "
            f"{train_count} image(s), {why}: {train_hint}, or train on one device. Received: train_count={train_count}"
        )
    if val_count < num_replicas:
        raise ValueError(
            f"A distributed run splits each validation batch over its {num_replicas} devices, and the validation "
            f"split has {val_count} image(s): {val_hint}, or train on one device. Received: val_count={val_count}"
        )
    check_batch_divisible(batch_size, num_replicas)


def check_distribute(enabled: bool) -> None:
    """Refuse data-parallel training on a backend that :func:`data_parallel` does not support.

    Example:
        >>> check_distribute(False)
    """
    backend = keras.backend.backend()
    if enabled and backend not in _PARALLEL_BACKENDS:
        raise ValueError(
            f"distribute=True supports the {' and '.join(map(repr, _PARALLEL_BACKENDS))} backends. Received: "
            f"KERAS_BACKEND={backend!r}. Train without --distribute, or switch backend."
        )
