"""Which precision a training run uses: ``mixed_bfloat16`` where the hardware runs bfloat16 natively.

A recipe's ``mixed_precision`` is ``True``, ``False`` or ``"auto"``. ``"auto"`` resolves to
``True`` where bfloat16 was measured (or is known) to be faster with no accuracy cost
(BENCHMARKS.md, "mixed precision"):

* a GPU with compute capability >= 8.0 (Ampere and later) under any backend, or a TPU under JAX;
* a CPU with AVX512-BF16 or AMX-BF16 under TensorFlow with oneDNN (``TF_ENABLE_ONEDNN_OPTS`` not
  ``0``) or under torch: on such a CPU, training was 1.3-1.8x faster under TensorFlow and 1.7x
  (CNN) under torch, and the CNN reached 93.97% test accuracy in bfloat16 against 93.59% in
  float32 (TensorFlow, same seed and recipe).

Everywhere else ``"auto"`` means float32: Keras on JAX gained little or lost in bfloat16 on that CPU
(0.91x CNN, 1.14x ResNet-34 training), and CPUs without bfloat16 instructions emulate it.

Example:
    >>> resolve_mixed_precision(False)
    (False, 'float32 requested')
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import keras

from zoo.recipe import AUTO

__all__ = ["AUTO", "accelerator_description", "cpu_has_native_bfloat16", "native_bfloat16", "resolve_mixed_precision"]

#: Backends whose CPU kernels were measured faster in mixed_bfloat16 on a CPU with bfloat16 instructions.
CPU_BFLOAT16_BACKENDS = ("tensorflow", "torch")
#: /proc/cpuinfo flags of x86 CPUs with bfloat16 arithmetic.
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_has_native_bfloat16(cpuinfo: str | os.PathLike = "/proc/cpuinfo") -> bool:
    """True when the CPU flags (Linux ``/proc/cpuinfo``) include AVX512-BF16 or AMX-BF16.

    Example:
        >>> cpu_has_native_bfloat16("/nonexistent")
        False
    """
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return False
    for line in text.splitlines():
        if line.startswith("flags"):
            flags = set(line.partition(":")[2].split())
            return any(flag in flags for flag in BF16_CPU_FLAGS)
    return False


def _capability_at_least_8(capability: Any) -> bool:
    try:
        major = int(str(capability[0] if isinstance(capability, (tuple, list)) else capability).split(".")[0])
    except (TypeError, ValueError, IndexError):
        return False
    return major >= 8


def _accelerator() -> tuple[str, bool] | None:
    """``(description, bfloat16 native)`` of the backend's first accelerator, or None on a CPU."""
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        device = jax.devices()[0]
        if device.platform == "tpu":
            return "TPU", True
        if device.platform == "gpu":
            capability = getattr(device, "compute_capability", None)
            return f"GPU {device.device_kind} (compute capability {capability})", _capability_at_least_8(capability)
        return None
    if backend == "tensorflow":
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        if not gpus:
            return None
        details = tf.config.experimental.get_device_details(gpus[0])
        capability = details.get("compute_capability")
        return f"GPU {details.get('device_name', '?')} (compute capability {capability})", _capability_at_least_8(capability)
    if backend == "torch":
        import torch

        if not torch.cuda.is_available():
            return None
        capability = torch.cuda.get_device_capability()
        return f"GPU {torch.cuda.get_device_name()} (compute capability {capability})", _capability_at_least_8(capability)
    return None


def accelerator_description() -> str | None:
    """The backend's first accelerator (``"GPU NVIDIA H200 (compute capability 9.0)"``), or None on a CPU.

    Example:
        >>> accelerator_description()  # on a CPU-only machine  # doctest: +SKIP
    """
    found = _accelerator()
    return found[0] if found else None


def native_bfloat16() -> tuple[bool, str]:
    """Whether this backend and device run ``mixed_bfloat16`` natively, and why.

    Example:
        >>> native_bfloat16()  # doctest: +SKIP
        (True, 'tensorflow on a CPU with AVX512-BF16/AMX-BF16')
    """
    accelerator = _accelerator()
    backend = keras.backend.backend()
    if accelerator is not None:
        description, native = accelerator
        return native, f"{backend} on a {description}" + ("" if native else ": no native bfloat16")
    if backend not in CPU_BFLOAT16_BACKENDS:
        return False, f"{backend} on a CPU: bfloat16 measured 0.91-1.14x float32"
    if backend == "tensorflow" and os.environ.get("TF_ENABLE_ONEDNN_OPTS") == "0":
        return False, "tensorflow on a CPU with oneDNN off (TF_ENABLE_ONEDNN_OPTS=0)"
    if not cpu_has_native_bfloat16():
        return False, f"{backend} on a CPU without AVX512-BF16/AMX-BF16"
    return True, f"{backend} on a CPU with AVX512-BF16/AMX-BF16"


def resolve_mixed_precision(setting: bool | str) -> tuple[bool, str]:
    """``(use mixed_bfloat16?, reason)`` for a recipe's ``mixed_precision`` (True, False or "auto").

    Example:
        >>> resolve_mixed_precision(True)
        (True, 'mixed_bfloat16 requested')
    """
    if setting is True:
        return True, "mixed_bfloat16 requested"
    if setting is False:
        return False, "float32 requested"
    if setting != AUTO:
        raise ValueError(f"`mixed_precision` must be True, False or 'auto'. Received: mixed_precision={setting!r}")
    use, reason = native_bfloat16()
    return use, f"auto: {reason}"
