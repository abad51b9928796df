"""Smoke test of scripts/gpu_release.py --dry-run: train, stage in float16 shards, collect.

The real run needs the lent GPU; the dry run checks the plumbing on a CPU (one epoch on 256
images, in a scratch copy of the repository). It always trains on Keras/JAX (its children set
KERAS_BACKEND=jax), so running it under the other backends would only repeat the same minutes:
it runs in the TensorFlow suite, marked slow, and extended (~375 s there on a 2-core AVX2 EPYC, most
of it compiling ResNet-34 under XLA): run it before a GPU loan; CI checks its parts below.
"""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import keras
import pytest

from zoo.data.fashion_mnist import find_data_dir

ROOT = Path(__file__).resolve().parent.parent


def _script():
    spec = importlib.util.spec_from_file_location("gpu_release_script", ROOT / "scripts" / "gpu_release.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(arch, label, status="finished", monitor="val_accuracy", value=0.9):
    return {"arch": arch, "label": label, "run": f"runs/{arch}-{label}-gpu", "status": status,
            "command": f"scripts/train.py {arch} --output runs/x", "best": {"monitor": monitor, "value": value}}


def test_variant_flags_are_parsed_and_bad_ones_refused():
    script = _script()
    assert script.parse_variant("resnet34:b512=--batch-size 512 --epochs 104", ["resnet34"]) == (
        "resnet34", "b512", ["--batch-size", "512", "--epochs", "104"])
    assert script.run_folder("resnet34", "b512") == "runs/resnet34-b512-gpu"
    assert script.run_folder("resnet34", "recipe") == "runs/resnet34-gpu"
    for text, words in [("resnet34=--epochs 3", "ARCH:LABEL=FLAGS"), ("cnn:a=--epochs 3", "not in --models"),
                        ("resnet34:recipe=--epochs 3", "recipe run"), ("resnet34:a=--output /tmp/x", "may not set"),
                        ("resnet34:a=--limit=10", "may not set"), ("resnet34:A b=--epochs 3", "ARCH:LABEL=FLAGS"),
                        ("resnet34:a=--out x", "may not set"), ("resnet34:a=--lim 9", "may not set"),  # prefixes
                        ("resnet34:a=--data pics", "may not set"), ("resnet34:a=--set monitor=val_loss", "same validation"),
                        ("resnet34:a=--set val_size=100", "same validation"), ("resnet34:a=--set 'x=1", "shell command line"),
                        ("resnet34:a=--set=monitor=val_loss", "same validation")]:
        with pytest.raises(ValueError, match=words) as error:
            script.parse_variant(text, ["resnet34"])
        assert repr(text) in str(error.value)


def test_an_out_folder_with_earlier_results_is_refused(tmp_path, capsys):
    out = tmp_path / "out"
    (out / "logs").mkdir(parents=True)
    (out / "gpu_release.json").write_text("{}")
    with pytest.raises(SystemExit) as exit_:
        _script().main(["--dry-run", "--models", "resnet34", "--out", str(out)])
    assert exit_.value.code == 2
    assert "already holds results of an earlier call: pass --resume" in capsys.readouterr().err
    assert (out / "gpu_release.json").read_text() == "{}" and sorted(p.name for p in out.iterdir()) == ["gpu_release.json", "logs"]


@pytest.mark.parametrize("keep", [False, True])
def test_the_dry_runs_scratch_copy_is_deleted_unless_kept(tmp_path, monkeypatch, capsys, keep):
    script = _script()
    source = tmp_path / "checkout"  # a small stand-in for the checkout the scratch copy copies
    (source / "zoo").mkdir(parents=True)
    (source / "zoo" / "x.py").write_text("x = 1")
    temp = tmp_path / "temp"
    temp.mkdir()
    monkeypatch.setattr(script.tempfile, "tempdir", str(temp))
    real_copy = script._scratch_copy
    monkeypatch.setattr(script, "_scratch_copy", lambda: real_copy(source))
    seen = []

    def fake_train_all(root, runs, args, logs):  # the scratch copy exists while the runs train
        seen.append((root / "zoo" / "x.py").read_text())
        raise RuntimeError("training failed")

    monkeypatch.setattr(script, "train_all", fake_train_all)
    argv = ["--dry-run", "--models", "resnet34", "--out", str(tmp_path / "out")] + (["--keep-scratch"] if keep else [])
    with pytest.raises(RuntimeError, match="training failed"):  # deleted even when a step fails
        script.main(argv)
    assert seen == ["x = 1"]
    kept = list(temp.glob("zoo-gpu-release-*/repo"))
    assert len(kept) == (1 if keep else 0)
    assert ("scratch copy is kept in" in capsys.readouterr().out) == keep
    assert (source / "zoo" / "x.py").exists()  # the checkout itself is never touched


def test_keep_scratch_without_a_dry_run_is_refused(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        _script().main(["--keep-scratch", "--out", str(tmp_path / "out")])
    assert exit_.value.code == 2 and "--keep-scratch only applies to --dry-run" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_resume_keeps_runs_finished_in_an_earlier_call(tmp_path):
    import argparse

    script = _script()
    run = tmp_path / "runs" / "resnet34-b512-gpu"
    run.mkdir(parents=True)
    best = {"monitor": "val_accuracy", "value": 0.95, "epoch": 104}
    (run / "run.json").write_text(json.dumps({"status": "complete", "training": {"best": best}, "metrics": {"accuracy": 0.951}}))
    args = argparse.Namespace(resume=True, dry_run=False, budget_s=5, data_dir=None)
    report = script.train_all(tmp_path, [("resnet34", "b512", ["--batch-size", "512"])], args, tmp_path)
    # not started again (train.py would refuse a complete folder and the run would count as failed)
    assert report["resnet34:b512"]["status"] == "finished" and report["resnet34:b512"]["best"] == best
    assert report["resnet34:b512"]["note"] == "finished in an earlier call" and not list(tmp_path.glob("train-*.log"))


def test_collect_replaces_an_earlier_release_in_out_instead_of_mixing_shards(tmp_path):
    root, out = tmp_path / "checkout", tmp_path / "out"
    staged = root / "weights" / "resnet34.fmnist"
    staged.mkdir(parents=True)
    (staged / "model.safetensors.index.json").write_text("{}")
    (staged / "model-00001-of-00002.safetensors").write_bytes(b"new")
    (root / "zoo" / "released").mkdir(parents=True)
    (root / "zoo" / "released" / "resnet34.fmnist.json").write_text("{}")
    earlier = out / "weights" / "resnet34.fmnist"
    earlier.mkdir(parents=True)
    (earlier / "model-00001-of-00006.safetensors").write_bytes(b"old")
    _script().collect(root, ["resnet34"], [], out)
    assert sorted(p.name for p in earlier.iterdir()) == ["model-00001-of-00002.safetensors", "model.safetensors.index.json"]


def test_the_release_is_the_run_with_the_best_validation_figure():
    script = _script()
    runs = {"a": _run("resnet34", "recipe", value=0.941), "b": _run("resnet34", "b512", value=0.948),
            "c": _run("resnet34", "f32", status="stopped at the budget", value=0.99),  # unfinished: never chosen
            "d": _run("xception_localizer", "recipe", monitor="val_loss", value=0.68),
            "e": _run("xception_localizer", "long", monitor="val_loss", value=0.71)}  # a loss: lower is better
    chosen = script.choose_runs(runs)
    assert chosen["resnet34"]["label"] == "b512" and chosen["xception_localizer"]["label"] == "recipe"
    assert script.choose_runs({"a": _run("resnet34", "recipe", value=0.94), "b": _run("resnet34", "x", value=0.94)})[
        "resnet34"]["label"] == "recipe"  # a tie keeps the recipe run
    assert script.choose_runs({"b": _run("resnet34", "x", value=0.94), "a": _run("resnet34", "recipe", value=0.94)})[
        "resnet34"]["label"] == "recipe"  # listed after the variant (a run finished in an earlier call) too
    note = script.choice_note(runs, "resnet34")
    assert note.startswith(" Chosen by the best validation figure among 2 runs") and "0.9480" in note and "--output" not in note
    assert script.choice_note(runs, "cnn") == ""


def _data_dir():
    return find_data_dir()


def _checkout_state() -> dict:
    """What a release would change in the checkout: the files under weights/ and zoo/released/ (sizes and
    times), registry.json, git's view of the tracked files (when it is a clone), and a run folder of its own."""
    status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True,
                            text=True, check=False)
    files = {
        str(p.relative_to(ROOT)): (p.stat().st_size, p.stat().st_mtime_ns)
        for folder in ("weights", "zoo/released") for p in (ROOT / folder).rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }
    return {"git": status.stdout if status.returncode == 0 else None, "files": files,
            "registry": (ROOT / "zoo" / "registry.json").read_text(), "run": (ROOT / "runs" / "resnet34-gpu").exists()}


@pytest.mark.slow
@pytest.mark.extended  # run before a GPU loan: CI checks its parts (variants, choice, resume, staging)
@pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                    reason="the script trains on Keras/JAX whatever the suite's backend: once, in the TensorFlow suite")
@pytest.mark.skipif(_data_dir() is None, reason="Fashion-MNIST IDX files not installed")
def test_gpu_release_dry_run_stages_float16_shards(tmp_path):
    out = tmp_path / "out"
    cmd = [sys.executable, "scripts/gpu_release.py", "--dry-run", "--models", "resnet34", "--out", str(out),
           "--data-dir", str(_data_dir()), "--variant", "resnet34:seed1=--seed 1"]
    before = _checkout_state()
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert _checkout_state() == before  # the checkout is untouched: weights, records, registry.json, runs/

    summary = json.loads((out / "gpu_release.json").read_text())
    recorded = (out / "gpu_release.json").read_text()
    assert str(tmp_path) not in recorded and "zoo-gpu-release-" not in recorded  # no path of this machine
    assert summary["training"]["resnet34"]["status"] == "finished"
    assert "--data-dir" not in summary["training"]["resnet34"]["command"]
    variant = summary["training"]["resnet34:seed1"]
    assert variant["status"] == "finished" and "--seed 1" in variant["command"] and variant["run"] == "runs/resnet34-seed1-gpu"
    chosen = max(summary["training"].values(), key=lambda run: run["best"]["value"])  # val_accuracy: highest
    (staged,) = summary["releases"]
    assert staged["name"] == "resnet34.fmnist" and staged["storage_dtype"] == "float16"
    assert staged["run"] == chosen["run"]
    folder = out / "weights" / "resnet34.fmnist"
    shards = sorted(folder.glob("model-*.safetensors"))
    assert len(shards) >= 3 and all(p.stat().st_size < 16 * 2**20 for p in shards)  # the device's 16 MiB cap
    record = json.loads((out / "zoo" / "released" / "resnet34.fmnist.json").read_text())
    assert record["storage_dtype"] == "float16" and record["metrics"] == staged["metrics"]
    assert {f["name"] for f in record["files"]} >= {"config.json", "model.safetensors.index.json", "README.md"}
    catalog = json.loads((out / "registry.json").read_text())
    assert catalog["models"]["resnet34"]["weights"]["fmnist"]["release"]["storage_dtype"] == "float16"
    assert (out / "runs" / "resnet34-gpu" / "history.csv").exists() and (out / "runs" / "resnet34-seed1-gpu" / "run.json").exists()
    assert "Chosen by the best validation figure among 2 runs" in record["notes"]
    assert "resnet34" in done.stdout.splitlines()[-1]
