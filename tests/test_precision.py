"""zoo.training.precision: when "auto" picks mixed_bfloat16, and how a run records it."""

from __future__ import annotations

import keras
import pytest

from zoo.training import Recipe, get_recipe, train_command
from zoo.training import precision
from zoo.training.precision import cpu_has_native_bfloat16, native_bfloat16, resolve_mixed_precision

BACKEND = keras.backend.backend()


@pytest.mark.parametrize(
    ("flags", "expected"),
    [("fpu vme avx512f avx512_vnni avx512_bf16 fma", True), ("fpu amx_tile amx_bf16", True), ("fpu avx2 fma avx512f", False)],
)
def test_cpu_flags_decide_native_bfloat16(tmp_path, flags, expected):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nmodel name\t: Some CPU\nflags\t\t: {flags}\n\nprocessor\t: 1\n")
    assert cpu_has_native_bfloat16(cpuinfo) is expected


def test_unreadable_cpuinfo_means_no_native_bfloat16(tmp_path):
    assert cpu_has_native_bfloat16(tmp_path / "missing") is False


def test_explicit_settings_win_and_bad_ones_are_refused():
    assert resolve_mixed_precision(True) == (True, "mixed_bfloat16 requested")
    assert resolve_mixed_precision(False) == (False, "float32 requested")
    with pytest.raises(ValueError, match=r"True, False or 'auto'. Received: mixed_precision='yes'"):
        resolve_mixed_precision("yes")
    with pytest.raises(ValueError, match=r"mixed_precision.*Received: mixed_precision=1"):
        Recipe(arch="cnn", mixed_precision=1)


@pytest.mark.skipif(BACKEND not in precision.CPU_BFLOAT16_BACKENDS, reason="the TensorFlow / torch CPU rule")
@pytest.mark.parametrize("native", [True, False])
def test_auto_on_a_cpu_follows_the_cpu_flags(monkeypatch, native):
    if precision._accelerator() is not None:
        pytest.skip("this machine has an accelerator")
    monkeypatch.delenv("TF_ENABLE_ONEDNN_OPTS", raising=False)
    monkeypatch.setattr(precision, "cpu_has_native_bfloat16", lambda: native)
    use, reason = resolve_mixed_precision("auto")
    assert use is native
    assert reason == f"auto: {BACKEND} on a CPU with{'' if native else 'out'} AVX512-BF16/AMX-BF16"
    if BACKEND == "tensorflow":
        monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", "0")
        assert native_bfloat16() == (False, "tensorflow on a CPU with oneDNN off (TF_ENABLE_ONEDNN_OPTS=0)")


@pytest.mark.skipif(BACKEND != "jax", reason="the JAX CPU rule")
def test_auto_on_a_jax_cpu_is_float32(monkeypatch):
    if precision._accelerator() is not None:
        pytest.skip("this machine has an accelerator")
    monkeypatch.setattr(precision, "cpu_has_native_bfloat16", lambda: True)
    assert resolve_mixed_precision("auto") == (False, f"auto: {BACKEND} on a CPU: bfloat16 measured 0.91-1.14x float32")


def test_recipes_default_to_auto_and_commands_spell_the_resolved_choice():
    assert get_recipe("cnn").mixed_precision == "auto"
    assert train_command("cnn", mixed_precision=True) == "python scripts/train.py cnn --mixed-precision"
    assert train_command("cnn", mixed_precision=False) == "python scripts/train.py cnn --no-mixed-precision"
    assert train_command("cnn", mixed_precision=None) == "python scripts/train.py cnn"
