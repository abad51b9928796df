"""Smoke test of benchmarks/run.py: a --quick run (one backend, the CNN) writes complete results.

No timing assertions: the numbers of a --quick run mean nothing; this only checks that every part
of the benchmark runs and reports positive figures under the documented keys.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import keras
import pytest

ROOT = Path(__file__).resolve().parent.parent
#: The suite's backend (KERAS_BACKEND) when it is installed, else the first installed one.
BACKEND = next(
    (b for b in (os.environ.get("KERAS_BACKEND"), "tensorflow", "jax", "torch")
     if b in ("tensorflow", "jax", "torch") and importlib.util.find_spec(b)),
    None,
)


def _positive(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0


def test_a_benchmark_run_keeps_an_output_folders_logs_without_overwrite(tmp_path):
    """--out onto a folder whose logs/ holds files (a user's notes, an earlier run's logs): refused
    before anything is measured; logs/ was deleted without asking."""
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "mine.txt").write_text("notes")
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "run.py"), "--quick", "--models", "cnn", "--sections", "load",
         "--out", str(tmp_path)], capture_output=True, text=True, cwd=ROOT, timeout=60, check=False)
    assert done.returncode == 2 and "already holds logs/" in done.stderr and "--overwrite" in done.stderr
    assert (tmp_path / "logs" / "mine.txt").read_text() == "notes"


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="plumbing smoke test of benchmarks/run.py (no figures asserted): TensorFlow suite only")
@pytest.mark.slow
@pytest.mark.extended  # run before a benchmark session: a plumbing check of benchmarks/run.py, ~100 s
@pytest.mark.skipif(BACKEND is None, reason="no Keras backend installed")
def test_quick_benchmark_writes_complete_results(tmp_path):
    out = tmp_path / "results"
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_") and k != "TF_ENABLE_ONEDNN_OPTS"}
    cmd = [
        sys.executable, str(ROOT / "benchmarks" / "run.py"), "--quick", "--backends", BACKEND,
        "--models", "cnn", "--tf-onednn", "default", "--out", str(out),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=240, check=False)
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr[-3000:]}"

    results = json.loads((out / "results.json").read_text())
    # A second run into the same folder is refused unless --overwrite: nothing measured is lost.
    again = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=60, check=False)
    assert again.returncode == 2 and "--overwrite" in again.stderr
    assert json.loads((out / "results.json").read_text()) == results
    assert (out / "results.md").read_text().startswith("# zoo CPU benchmark results")
    assert {"schema_version", "meta", "throughput", "options", "pipeline", "torch_peer", "load", "hub", "skipped", "errors"} <= set(results)
    assert results["errors"] == []
    assert results["meta"]["quick"] is True
    assert {"cpu", "versions", "plan", "started", "finished"} <= set(results["meta"])
    # The recorded command runs as written on another machine: no --out path; logs are named relative to the output.
    assert results["meta"]["command"] == f"python benchmarks/run.py --quick --backends {BACKEND} --models cnn --tf-onednn default"
    assert str(tmp_path) not in (out / "results.json").read_text() + (out / "results.md").read_text()

    (row,) = results["throughput"]
    assert row["status"] == "ok" and row["backend"] == BACKEND and row["model"] == "cnn"
    for part in ("train", "infer"):
        for side in ("zoo", "reference"):
            assert len(row[part][side]["windows"]) >= 3
            assert _positive(row[part][side]["median"])
        assert _positive(row[part]["ratio"])
    assert _positive(row["peak_rss_mb"])
    assert (out / row["log"]).is_file()
    probe = row["probe_output"]  # softmax of the seeded zoo model on 4 images
    assert len(probe) == 4 and all(len(p) == 10 and math.isclose(sum(p), 1.0, rel_tol=1e-4) for p in probe)

    (options,) = results["options"]
    assert options["status"] == "ok" and options["backend"] == BACKEND and options["model"] == "cnn"
    assert {"default", "mixed_bfloat16"} <= set(options["options"])
    assert options["options"]["mixed_bfloat16"]["dtype_policy"] == "mixed_bfloat16"
    for part in ("train", "infer"):
        for key in options["options"]:
            assert len(options[part][key]["windows"]) >= 3
            assert _positive(options[part][key]["median"])
        assert options[part]["ratio_vs_default"]["default"] == 1.0
        assert all(_positive(v) for v in options[part]["ratio_vs_default"].values())

    from zoo.data import find_data_dir

    if find_data_dir() is not None:
        (pipeline,) = results["pipeline"]
        assert pipeline["status"] == "ok" and pipeline["backend"] == BACKEND and pipeline["model"] == "cnn"
        assert pipeline["augmentation"] == "pad-crop 2, flip"  # the cnn recipe's
        sources = ("arrays", "pipeline", "no_augmentation", "pipeline_threads")
        for key in sources:
            assert len(pipeline["train"][key]["windows"]) >= 3
            assert _positive(pipeline["train"][key]["median"])
        assert pipeline["train"]["ratio_vs_arrays"]["arrays"] == 1.0
        assert all(_positive(pipeline["train"]["ratio_vs_arrays"][key]) for key in sources)
        assert _positive(pipeline["pipeline_alone"]["median"])
    else:
        assert results["pipeline"] == [] and any(s["section"] == "pipeline" for s in results["skipped"])

    if importlib.util.find_spec("torch"):
        (peer,) = results["torch_peer"]
        assert peer["status"] == "ok"
        assert _positive(peer["train"]["eager"]["median"]) and _positive(peer["infer"]["eager"]["median"])
        assert _positive(row["train"]["ratio_vs_torch"]) and _positive(row["infer"]["ratio_vs_torch"])
    else:
        assert any(s["section"] == "peer" for s in results["skipped"])

    (load,) = results["load"]
    assert load["status"] == "ok"
    for key in ("import_framework_s", "import_keras_s", "import_zoo_s", "peak_rss_mb"):
        assert _positive(load[key]), key
    cnn = load["models"]["cnn"]
    for key in ("first_load_s", "load_s", "verify_s", "build_s", "weights_s", "weights_mb"):
        assert _positive(cnn[key]), key
    weights = load["weights_resnet34"]
    for key in ("safetensors_s", "h5_s", "speedup", "safetensors_mb", "h5_mb"):
        assert _positive(weights[key]), key
    assert all(_positive(v) for v in weights["tracemalloc_peak_mb"].values())

    hub = results["hub"]
    assert hub["status"] == "ok" and hub["server"]["errors"] == []
    repo = hub["repos"]["cnn"]
    for key in ("mb", "push_mb_s", "download_mb_s", "pull_mb_s", "sha256_mb_s", "verify_fraction_of_pull",
                "warm_pull_s", "load_hf_warm_online_s", "load_hf_warm_offline_s"):
        assert _positive(repo[key]), key
