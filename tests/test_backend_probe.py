"""``--backend auto`` (issue 11): each installed backend trains the run's model for a few steps, the
fastest trains the run."""

from __future__ import annotations

import os

import keras
import pytest

from zoo.training import backend_probe
from zoo.training.backend_probe import ProbeResult, installed_backends, measure_training_speed, probe_backends
from zoo.training import get_recipe
from zoo.training.cli import main as train_main
from zoo.training.fit import training_phases

BACKEND = keras.backend.backend()


@pytest.mark.pipeline  # the slow test below measures every backend (JAX included) in its own process
def test_the_probe_trains_the_runs_model_at_its_first_size_in_the_precision_asked():
    measured = measure_training_speed("resnet18", batch_size=4, mixed_precision=False, steps=1)
    assert measured["backend"] == BACKEND and measured["images_per_second"] > 0
    first_size = training_phases(get_recipe("resnet18"))[0][2]  # progressive resizing's first phase
    assert first_size is not None and first_size < 28 and measured["image_size"] == first_size
    full = measure_training_speed("resnet18", batch_size=4, mixed_precision=False, steps=1, recipe_overrides={"resolutions": []})
    assert full["image_size"] == 28  # the run's --set: no progressive resizing
    longer = measure_training_speed("cnn", batch_size=4, steps=1, epochs=64, recipe_overrides={"restarts": [[56, 0.2]]})
    assert longer["images_per_second"] > 0  # a restart past the recipe's length, within the run's --epochs
    assert (measured["batch_size"], measured["mixed_precision"], measured["steps"]) == (4, False, 1)
    with pytest.raises(ValueError, match="Received: steps=0"):
        measure_training_speed("cnn", steps=0)
    # the localizer's batches carry class and box targets (zoo.training.backend_probe.random_batch's example)


@pytest.mark.slow  # subprocesses, whatever the suite's backend: TensorFlow suite only
def test_a_backend_is_measured_in_its_own_process_and_failures_are_reported():
    results = probe_backends("cnn", backends=[BACKEND, "not_a_backend"], batch_size=16, steps=1)
    assert [r.backend for r in results] == [BACKEND, "not_a_backend"]
    assert results[0].images_per_second and results[0].images_per_second > 0 and results[0].error is None, results
    assert results[1] == ProbeResult("not_a_backend", None, "not installed")
    failed = probe_backends("not_a_model", backends=[BACKEND], steps=1)[0]
    assert failed.images_per_second is None and failed.error.startswith("exit 1: ValueError: No training recipe for 'not_a_model'")


@pytest.mark.slow
@pytest.mark.extended  # one process per installed backend (~130 s): the test above, for each of them
def test_every_installed_backend_is_measured_in_its_own_process():
    results = probe_backends("cnn", backends=installed_backends(), batch_size=16, steps=1)
    assert [r.backend for r in results] == installed_backends()
    assert all(r.images_per_second and r.images_per_second > 0 and r.error is None for r in results), results


def _auto(monkeypatch, capsys, results, *argv):
    """``train --backend auto ARGV`` in this process with the probe's results given; returns
    (exit status, stderr, the command it restarted with, that command's KERAS_BACKEND)."""
    seen = {}

    def probe_backends(arch, **kwargs):
        seen["probe"] = (arch, kwargs)
        return results

    monkeypatch.setattr(backend_probe, "probe_backends", probe_backends)

    def execve(path, args, env):
        seen["exec"] = (args, env["KERAS_BACKEND"])
        raise SystemExit(0)

    monkeypatch.setattr(os, "execve", execve)
    try:
        status = train_main(["resnet34", "--backend", "auto", *argv], prog="scripts/train.py", reexec=["scripts/train.py"])
    except SystemExit as exit_:
        status = exit_.code
    return status, capsys.readouterr().err, seen


def test_auto_restarts_the_command_on_the_fastest_backend(monkeypatch, capsys):
    results = [ProbeResult("tensorflow", 75.0), ProbeResult("jax", None, "exit 1: out of memory"), ProbeResult("torch", 98.5)]
    status, err, seen = _auto(monkeypatch, capsys, results, "--batch-size", "128", "--no-mixed-precision")
    assert status == 0
    assert seen["probe"] == ("resnet34", {"batch_size": 128, "mixed_precision": False, "log": seen["probe"][1]["log"],
                                          "recipe_settings": [], "epochs": None})
    args, backend = seen["exec"]
    assert backend == "torch"
    assert args[1:] == ["scripts/train.py", "resnet34", "--backend", "torch", "--batch-size", "128", "--no-mixed-precision"]
    assert "torch         98.5 img/s  <- chosen" in err and "jax         exit 1: out of memory" in err


def test_auto_probes_the_runs_own_settings_and_a_resumed_run_keeps_its_backend(monkeypatch, capsys, tmp_path):
    """The probe trained the bare recipe (16 px for `--set 'resolutions=[]'`, which trains at 28 px);
    `--resume --backend auto` probed every backend, then was refused unless the fastest was the run's."""
    import json
    import subprocess

    fast = [ProbeResult("torch", 98.5)]
    _, _, seen = _auto(monkeypatch, capsys, fast, "--set", "resolutions=[]", "--set", "restarts=[]")
    assert seen["probe"][1]["recipe_settings"] == ["resolutions=[]", "restarts=[]"]
    _, _, seen = _auto(monkeypatch, capsys, fast, "--data", str(tmp_path), "--output", str(tmp_path / "run"))
    assert seen["probe"][1]["recipe_settings"] == ["resolutions=[]"]  # a fine-tune trains at the input size
    _, _, seen = _auto(monkeypatch, capsys, fast, "--data", str(tmp_path), "--set", "resolutions=[]")
    assert seen["probe"][1]["recipe_settings"] == ["resolutions=[]"]  # the user's own, not set twice
    _, _, seen = _auto(monkeypatch, capsys, fast, "--epochs", "64", "--set", "restarts=[[56,0.2]]")
    assert seen["probe"][1]["epochs"] == 64  # the restart at 56 is checked against the run's 64 epochs
    status, err, seen = _auto(monkeypatch, capsys, fast, "--set", "wd=0.1")  # a mistyped field: said at once
    assert status == 2 and "probe" not in seen and "--set: A recipe setting is FIELD=VALUE" in err

    other = "torch" if BACKEND != "torch" else "jax"
    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_text(json.dumps({"status": "training", "backend": other}))
    status, err, seen = _auto(monkeypatch, capsys, fast, "--resume", "--output", str(run))
    assert status == 0 and "probe" not in seen  # nothing probed
    args, backend = seen["exec"]
    assert backend == other and args[1:] == ["scripts/train.py", "resnet34", "--backend", other, "--resume", "--output", str(run)]
    assert f"trains on {other}" in err

    commands = []  # the settings reach each backend's probe process

    def run_probe(command, **kwargs):
        commands.append(command)
        return subprocess.CompletedProcess(command, 0, stdout=json.dumps({"images_per_second": 5.0}) + "\n", stderr="")

    monkeypatch.setattr(backend_probe.subprocess, "run", run_probe)
    assert probe_backends("cnn", backends=[BACKEND], recipe_settings=["resolutions=[]"])[0].images_per_second == 5.0
    assert commands[0][-2:] == ["--set", "resolutions=[]"]
    probe_backends("cnn", backends=[BACKEND], recipe_settings=["restarts=[[56,0.2]]"], epochs=64)
    assert commands[1][-4:] == ["--set", "restarts=[[56,0.2]]", "--epochs", "64"]


def test_auto_says_why_when_no_backend_could_train(monkeypatch, capsys):
    status, err, seen = _auto(monkeypatch, capsys, [ProbeResult("torch", None, "no result within 600 s")])
    assert status == 2 and "exec" not in seen
    assert "error: --backend auto: No backend could train the probe. Received: torch: no result within 600 s" in err
    with pytest.raises(SystemExit) as exit_:  # a notebook call cannot restart itself
        train_main(["cnn", "--backend", "auto"])
    assert exit_.value.code == 2 and "restarts the command" in capsys.readouterr().err


def test_the_backend_flag_is_taken_only_by_its_full_name():
    # an abbreviation (`--backe auto`) escaped with_backend's rewrite: the re-executed command probed again
    from zoo.training.cli import build_parser

    parser = build_parser(["cnn"])
    assert parser.parse_args(["cnn", "--backend", "auto"]).backend == "auto"
    with pytest.raises(SystemExit):
        parser.parse_args(["cnn", "--backe", "auto"])
    assert backend_probe.with_backend(["cnn", "--backend", "auto"], "torch") == ["cnn", "--backend", "torch"]
