"""Training (issue #4): recipes, run folders, resume after a kill, evaluation, multi-device.

Every run is tiny (a few hundred Fashion-MNIST images, 1-4 epochs, batch 32) so the module
stays within a few minutes per backend on two CPU cores. Marked `pipeline`: runs in the TensorFlow
and PyTorch suites (two simulated devices: tests/test_distribute.py; a training step of every
architecture under every backend: tests/test_models.py).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pytest
from conftest import ROOT, Crash, CrashAfterEpoch, assert_same_run_weights, small_overrides
from conftest_hub import hub_env, local_hub  # noqa: F401

import zoo
from zoo.data import load_fashion_mnist
from zoo.data.fashion_mnist import find_data_dir
from zoo.format import FORMAT_VERSION, read_folder
from zoo.evaluation import confusion_matrix, evaluate, evaluation_data
from zoo.tasks import get_task
from zoo.training import (
    Recipe,
    RunExistsError,
    default_run_dir,
    get_recipe,
    list_recipes,
    make_schedule,
    prepare_run_dir,
    train,
    train_command,
)
from zoo.training.precision import resolve_mixed_precision
from zoo.training.run_dir import LOCK_NAME, RunInUseError

BACKEND = keras.backend.backend()
DATA_DIR = find_data_dir()  # $FASHION_MNIST_DIR, else the Debian package's folder
#: The JAX suite checks the model layer; training runs under TensorFlow here (and PyTorch on demand),
#: and under JAX in tests/test_progressive.py, tests/test_distribute.py and the GPU-release dry run
#: (tests/test_gpu_release.py, extended).
pytestmark = [
    pytest.mark.skipif(DATA_DIR is None, reason="needs Fashion-MNIST ($FASHION_MNIST_DIR or dataset-fashion-mnist)"),
    pytest.mark.pipeline,
]
CLASSIFIER_FILES = {
    "run.json", "config.json", "metadata.json", "model.safetensors", "last.safetensors", "metrics.json",
    "history.csv", "training_curves.png", "confusion_matrix.png", "README.md",
}


def tiny_train(arch: str, folder: Path, *, epochs: int = 1, limit: int = 128, **kwargs) -> Path:
    return train(
        arch, output_dir=folder, epochs=epochs, batch_size=32, limit=limit,
        model_overrides=small_overrides(arch), verbose=0, **kwargs,
    )


def history_epochs(run: Path) -> list[int]:
    lines = (run / "history.csv").read_text().strip().splitlines()
    return [int(line.split(",")[0]) for line in lines[1:]]


def check_run_folder(run: Path, expected_files: set[str], epochs: int) -> dict:
    assert expected_files <= {p.name for p in run.iterdir()}
    assert not (run / "backup").exists() and not (run / "best").exists()
    folder = read_folder(run)
    assert folder.build["format_version"] == FORMAT_VERSION and folder.config is not None
    assert "metrics" not in folder.build  # config.json builds the model; the rest is metadata
    config = folder.fields
    for key in ("dataset", "label_names", "preprocessing", "metrics", "recipe", "seed", "backend",
                "train_command", "license"):
        assert key in config, key
    assert config["backend"] == BACKEND
    assert config["metrics"] == json.loads((run / "metrics.json").read_text())
    assert set(config["weights"]["files"]) == {"model.safetensors"}
    assert history_epochs(run) == list(range(epochs))
    assert json.loads((run / "run.json").read_text())["status"] == "complete"
    card = (run / "README.md").read_text()
    assert config["train_command"] in card and "training_curves.png" in card
    for png in run.glob("*.png"):
        assert png.read_bytes()[:4] == b"\x89PNG"
    return config


@pytest.fixture(scope="module")
def cnn_run(tmp_path_factory) -> Path:
    return tiny_train("cnn", tmp_path_factory.mktemp("runs") / "cnn", epochs=2, limit=256)


# --- recipes and run-folder rules (no training) ---------------------------------------------


def test_every_architecture_has_a_recipe():
    assert set(zoo.list_models()) <= set(list_recipes())
    for arch in list_recipes():
        recipe = get_recipe(arch)
        assert recipe.schedule == "cosine" and recipe.warmup_epochs > 0 and "target" in recipe.notes.lower()
    assert get_recipe("resnet34.fmnist", epochs=3).epochs == 3
    assert get_recipe("xception_localizer").task == "localization"
    with pytest.raises(ValueError, match="Unknown recipe field"):
        get_recipe("cnn", learning_rate=0.1)
    with pytest.raises(ValueError, match="label_smoothing"):
        get_recipe("cnn", label_smoothing=1.5)
    with pytest.raises(ValueError, match="only support flips"):
        Recipe(arch="x", task="localization", pad_crop=4)
    with pytest.raises(ValueError, match="No training recipe"):
        get_recipe("not_a_model")


def test_the_card_says_which_devices_the_run_trained_on():
    from zoo.training.report import trained_on

    described = trained_on()
    assert f"; {keras.backend.backend()} on " in described and "unknown devices" not in described  # torch: "cpu"


def test_the_card_names_the_accelerator(monkeypatch):
    from zoo.training import report

    monkeypatch.setattr(report, "accelerator_description", lambda: "GPU NVIDIA H200 (compute capability 9.0)")
    assert "(GPU NVIDIA H200 (compute capability 9.0)); single device" in report.trained_on()

    def broken():
        raise RuntimeError("no driver")

    monkeypatch.setattr(report, "accelerator_description", broken)  # the card goes on without the name
    assert "GPU NVIDIA" not in report.trained_on() and report.trained_on().endswith("; single device")


def test_schedule_warms_up_then_decays():
    recipe = get_recipe("resnet34", epochs=10, warmup_epochs=2, lr=0.2, restarts=())
    schedule = make_schedule(recipe, steps_per_epoch=10)
    rates = [float(keras.ops.convert_to_numpy(schedule(step))) for step in (0, 10, 20, 60, 100)]
    assert rates[0] == 0.0 and rates[1] == pytest.approx(0.1) and rates[2] == pytest.approx(0.2)
    assert rates[2] > rates[3] > rates[4] and rates[4] == pytest.approx(0.0, abs=1e-6)


def test_schedule_restarts_warm_at_each_restart_epoch_and_scales_with_lr():
    from zoo.training.schedules import Piecewise

    recipe = get_recipe("resnet34", epochs=10, warmup_epochs=2, lr=0.2, restarts=((6, 0.25),))

    def rates(schedule, steps):
        return [float(keras.ops.convert_to_numpy(schedule(step))) for step in steps]

    first, before, restart, middle, end = rates(make_schedule(recipe, steps_per_epoch=10), (20, 59, 60, 80, 100))
    assert first == pytest.approx(0.2) and before < 0.001  # the first cycle ends at the restart
    assert restart == pytest.approx(0.05) and middle == pytest.approx(0.025) and end == pytest.approx(0.0, abs=1e-6)
    # The peak is a share of lr: a batch-size override (which scales lr) scales it too.
    halved = rates(make_schedule(recipe.replace(lr=0.1), steps_per_epoch=10), (60,))
    assert halved == [pytest.approx(0.025)]
    # A schedule survives Keras serialization (an optimizer's config).
    schedule = make_schedule(recipe, steps_per_epoch=10)
    copy = keras.optimizers.schedules.deserialize(keras.optimizers.schedules.serialize(schedule))
    assert isinstance(copy, Piecewise) and rates(copy, (0, 59, 60, 80)) == pytest.approx(rates(schedule, (0, 59, 60, 80)))
    # Shorter runs keep the restart at the same share of the run; too short a run drops it.
    resnet34_52 = get_recipe("resnet34").replace(epochs=52, restarts=((40, 0.2),))  # as its release run began it
    assert resnet34_52.replace(epochs=13).restarts == ((10, 0.2),) and resnet34_52.replace(epochs=1).restarts == ()
    for bad in (((0, 0.2),), ((10, 0.2),), ((6, 0.0),), ((6, 0.2), (5, 0.1)), ((6, 0.2), (6, 0.1)), "6"):
        with pytest.raises(ValueError, match=r"Received: restarts="):
            get_recipe("resnet34", epochs=10, warmup_epochs=2, restarts=bad)
    with pytest.raises(ValueError, match="schedule='cosine'"):
        get_recipe("resnet34", epochs=10, schedule="constant", restarts=((6, 0.2),))
    assert get_recipe("resnet34", schedule="constant").restarts == ()  # another schedule drops the recipe's


def test_history_logs_the_rate_of_each_epochs_last_step():
    from zoo.training.callbacks import LogLearningRate

    recipe = get_recipe("resnet34", epochs=4, warmup_epochs=1, lr=0.2, restarts=((3, 0.5),))
    schedule = make_schedule(recipe, steps_per_epoch=2)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(schedule), loss="mse")
    history = model.fit(np.zeros((8, 3)), np.zeros((8, 1)), batch_size=4, epochs=4, verbose=0,
                        callbacks=[LogLearningRate()])
    last_steps = [float(keras.ops.convert_to_numpy(schedule(2 * epoch + 1))) for epoch in range(4)]
    assert history.history["learning_rate"] == pytest.approx(last_steps)
    # Not the next epoch's first step (the optimizer's own reading at the epoch's end): the restart's
    # peak (0.1 at step 6, epoch 4's first) shows in epoch 4's row, not in epoch 3's.
    assert float(keras.ops.convert_to_numpy(schedule(6))) == pytest.approx(0.1)
    assert history.history["learning_rate"][2] < 0.05 and history.history["learning_rate"][3] == pytest.approx(0.05)


@pytest.mark.parametrize("field, value", [
    ("flip", "False"), ("nesterov", 1), ("fresh_canvases", None), ("monitor", ""), ("notes", 3),
    ("loss_weights", 5), ("loss_weights", {"class": "1"}), ("loss_weights", {"box": -1.0}),
    ("model_overrides", [("stem", "small")]), ("lr", float("inf")), ("lr", float("nan")), ("arch", None),
])
def test_recipe_fields_of_the_wrong_kind_are_refused_by_name(field, value):
    with pytest.raises(ValueError, match=f"Recipe field `{field}` must be .* Received: {field}="):
        Recipe(**{"arch": "cnn", field: value})


def test_loss_weights_are_refused_where_there_is_one_loss():
    with pytest.raises(ValueError, match=r"one loss. Received: loss_weights=\{'class': 1.0\}, task='classification'"):
        Recipe(arch="cnn", loss_weights={"class": 1.0})
    assert get_recipe("xception_localizer").loss_weights  # the localizer weighs its two losses


def test_run_dir_rules(tmp_path):
    assert default_run_dir("resnet34", seed=3) == Path("runs/resnet34-3")
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    for kwargs in ({"resume": False, "overwrite": False}, {"resume": False, "overwrite": True}):
        with pytest.raises(RunExistsError, match="not a zoo run folder"):
            prepare_run_dir(foreign, **kwargs)
    assert (foreign / "notes.txt").exists()
    with pytest.raises(ValueError, match="not both"):
        prepare_run_dir(tmp_path / "new", resume=True, overwrite=True)
    run = prepare_run_dir(tmp_path / "new", resume=False, overwrite=False)
    run.write_marker(status="training")
    (run.path / "history.csv").write_text("epoch,loss\n0,1.0\n")
    # The folder stays locked while its RunDir holds the lock: even overwrite touches nothing.
    for kwargs in ({"resume": True, "overwrite": False}, {"resume": False, "overwrite": True}):
        with pytest.raises(RunInUseError, match="in use by this process"):
            prepare_run_dir(run.path, **kwargs)
    assert (run.path / "history.csv").exists()
    run.release()
    with pytest.raises(RunExistsError, match="--resume"):
        prepare_run_dir(run.path, resume=False, overwrite=False)
    resumed = prepare_run_dir(run.path, resume=True, overwrite=False)
    assert resumed.path == run.path
    resumed.release()
    emptied = prepare_run_dir(run.path, resume=False, overwrite=True)
    assert [p.name for p in emptied.path.iterdir()] == [LOCK_NAME]  # the lock file is never removed
    emptied.release()


def test_train_command_round_trips_flags():
    command = train_command("cnn", epochs=3, batch_size=64, limit=None, seed=2, distribute=True, output_dir="runs/x")
    assert command == "python scripts/train.py cnn --epochs 3 --batch-size 64 --seed 2 --distribute --output runs/x"


def test_recorded_commands_and_handles_run_as_written(tmp_path, monkeypatch):
    """`--data "My Photos"` was recorded as `--data My Photos` (refused by argparse), and a `~/`
    handle was refused as an unknown model name."""
    import shlex

    from zoo.training.cli import build_parser
    from zoo.training.initial_weights import recorded_handle

    command = train_command("cnn", data="My Photos", init_from="a/last.safetensors", epochs=2)
    assert command == "python scripts/train.py cnn --data 'My Photos' --init-from a/last.safetensors --epochs 2"
    args = build_parser().parse_args(shlex.split(command)[2:])
    assert (str(args.data), str(args.init_from), args.epochs) == ("My Photos", "a/last.safetensors", 2)
    run = tmp_path / "a"
    run.mkdir()
    for name in ("model.safetensors", "last.safetensors"):
        (run / name).write_bytes(b"x")
    assert recorded_handle(run / "model.safetensors") == "a" and recorded_handle(run) == "a"
    monkeypatch.setenv("HOME", str(tmp_path))
    assert recorded_handle("~/a") == "a"
    from zoo.training.run_dir import RunDir

    assert RunDir(Path("~/a")).path == run  # a run folder under ~ is the user's home, as zoo.load reads it
    monkeypatch.chdir(run)
    assert recorded_handle(".") == "a"


def test_train_command_records_recipe_settings_so_they_parse_back():
    import shlex

    from zoo.recipe import parse_recipe_settings

    settings = {"resolutions": (), "restarts": ((40, 0.2),), "monitor": "val_loss", "weight_decay": 1e-4, "flip": False}
    command = train_command("resnet34", epochs=64, recipe_settings=settings)
    assert command.startswith("python scripts/train.py resnet34 --epochs 64 --set 'resolutions=[]' --set 'restarts=[[40,0.2]]'")
    argv = shlex.split(command)
    parsed = parse_recipe_settings(argv[i + 1] for i, part in enumerate(argv) if part == "--set")
    assert parsed == {"resolutions": [], "restarts": [[40, 0.2]], "monitor": "val_loss", "weight_decay": 1e-4, "flip": False}


@pytest.mark.parametrize("item, words", [
    ("weight_decay", "FIELD=VALUE with FIELD one of"),
    ("wd=0.1", "FIELD=VALUE with FIELD one of"),
    ("lr=0.3", "use --lr"),
    ("epochs=3", "use --epochs"),
    ("model_overrides={}", "changes the model"),
    ("weight_decay=-1", "weight_decay"),  # parsed, then refused by the recipe's own check
    ("resolutions=[[0,16],[99,28]]", "The last resolution must start before the last epoch"),
    ("flip=False", "Received: flip='False'"),  # not JSON: a string, which would count as true
    ("nesterov=no", "Received: nesterov='no'"),
    ("monitor=3", "Received: monitor=3"),
    ("weight_decay=Infinity", "numbers must be finite. Received: 'weight_decay=Infinity'"),
    ("resolutions=[[0,1e400]]", "numbers must be finite. Received: 'resolutions=[[0,1e400]]'"),  # was an OverflowError
    ("restarts=[[40,NaN]]", "numbers must be finite. Received: 'restarts=[[40,NaN]]'"),
    ("resolutions=[[0,16],[2,20]]", "must equal the model's input size 28x28"),  # found before the folder is made
    ("monitor=val_acc", "its best epoch: one of ['accuracy', 'loss', 'val_accuracy', 'val_loss']"),
])
def test_bad_recipe_settings_end_with_one_error_line_and_write_nothing(tmp_path, capsys, item, words):
    from zoo.training.cli import main as train_main

    with pytest.raises(SystemExit) as exit_:
        train_main(["resnet34", "--set", item, "--limit", "64", "--output", str(tmp_path / "run"), "--verbose", "0"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("scripts/train.py: error: ") and words in err and err.count("\n") == 1, err
    assert "Received: " in err  # what was given, and (in the message) what is accepted
    assert not (tmp_path / "run").exists()


def test_a_recipe_setting_reaches_the_run_and_its_recorded_command(tmp_path):
    from zoo.training.cli import main as train_main

    run = tmp_path / "run"
    assert train_main(["cnn", "--epochs", "1", "--limit", "64", "--set", "weight_decay=0.0001", "--set", "flip=false",
                       "--set", "monitor=val_loss", "--output", str(run), "--verbose", "0"]) == 0
    record = json.loads((run / "run.json").read_text())
    recipe = record["settings"]["recipe"]
    assert (recipe["weight_decay"], recipe["flip"], recipe["monitor"]) == (1e-4, False, "val_loss")
    assert record["training"]["best"]["monitor"] == "val_loss"
    assert "--set weight_decay=0.0001 --set flip=false --set monitor=val_loss" in record["command"]
    assert str(tmp_path) not in record["command"]


def test_train_script_help_documents_every_flag():
    import importlib.util

    saved = dict(os.environ)
    try:
        spec = importlib.util.spec_from_file_location("train_script", ROOT / "scripts" / "train.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    parser = module.build_parser(list_recipes())
    flags = ["--epochs", "--batch-size", "--lr", "--limit", "--output", "--seed", "--resume",
             "--overwrite", "--push", "--mixed-precision", "--distribute", "--data-dir", "--set"]
    actions = {opt: action for action in parser._actions for opt in action.option_strings}
    for flag in flags:
        assert actions[flag].help, flag
    assert set(list_recipes()) <= set(parser._actions[1].choices)
    args = parser.parse_args(["cnn", "--epochs", "2", "--mixed-precision", "--push", "me/cnn"])
    assert (args.arch, args.epochs, args.mixed_precision, args.push) == ("cnn", 2, True, "me/cnn")
    assert parser.parse_args(["cnn", "--no-mixed-precision"]).mixed_precision is False
    assert parser.parse_args(["cnn"]).mixed_precision is None  # the recipe's "auto"


# --- evaluation helpers ---------------------------------------------------------------------


def test_evaluation_metrics():
    assert confusion_matrix(np.array([0, 1, 2, 2]), np.array([0, 2, 2, 2]), num_classes=3).tolist() == [
        [1, 0, 0], [0, 0, 1], [0, 0, 2]]
    labels = np.array([1, 0])
    boxes = np.array([[0.5, 0.5, 0.2, 0.2], [0.3, 0.3, 0.2, 0.2]], np.float32)
    outputs = {"class": np.array([[0.1, 0.9], [0.2, 0.8]]), "box": boxes.copy()}
    outputs["box"][1] = [0.8, 0.8, 0.2, 0.2]  # no overlap
    metrics = get_task("localization").metrics_from_predictions({"class": labels, "box": boxes}, outputs)
    assert metrics == {"accuracy": 0.5, "class_accuracy": 0.5, "box_iou": 0.5, "iou_50": 0.5}


def test_a_subset_is_held_to_its_sampling_error_nested_or_not():
    """`zoo eval --limit n` against a record of m examples: the first n of m images (nested) differ
    by variance p(1-p)|1/n - 1/m|; localization canvases are drawn per set, so their n canvases are
    not the first n of the record's: p(1-p)(1/n + 1/m)."""
    from zoo.evaluation import _recorded_for

    metrics = {"box_iou": 0.9}
    _, nested, _ = _recorded_for("box_iou", metrics, None, 5000, 5000, 0.001, nested=True)
    _, drawn, _ = _recorded_for("box_iou", metrics, None, 5000, 5000, 0.001, nested=False)
    assert nested == pytest.approx(3 * (0.09 * (1 / 5000 - 1 / 10000)) ** 0.5)
    assert drawn == pytest.approx(3 * (0.09 * (1 / 5000 + 1 / 10000)) ** 0.5)
    assert get_task("classification").nested_evaluation and not get_task("localization").nested_evaluation


# --- training runs --------------------------------------------------------------------------


def test_cnn_run_folder_is_complete(cnn_run):
    config = check_run_folder(cnn_run, CLASSIFIER_FILES, epochs=2)
    assert config["architecture"] == "cnn" and config["dataset"] == "fashion_mnist"
    assert len(config["label_names"]) == 10 and config["recipe"]["epochs"] == 2
    assert config["training"]["examples"] == {"train": 231, "val": 25, "test": 256}
    # No precision flag: the recipe's "auto", resolved for this machine and spelled out in the command.
    use_mixed, reason = resolve_mixed_precision("auto")
    assert config["training"]["mixed_precision"] is use_mixed and config["training"]["precision"] == reason
    assert config["recipe"]["mixed_precision"] is use_mixed
    assert ("--mixed-precision" if use_mixed else "--no-mixed-precision") in config["train_command"]
    # The exported best weights reproduce metrics.json; last.safetensors loads too.
    model = zoo.load(cnn_run)
    x, y = evaluation_data(model, limit=256)
    assert evaluate(model, x, y) == json.loads((cnn_run / "metrics.json").read_text())
    zoo.load_weights(zoo.create("cnn"), cnn_run / "last.safetensors")


@pytest.mark.parametrize("kwargs, pieces", [
    ({"limit": 0}, ["`limit`", "Received: limit=0"]),
    ({"seed": -1}, ["`seed`", "Received: seed=-1"]),
    ({"batch_size": 0}, ["`batch_size`", "Received: batch_size=0"]),  # not reported as the lr scaled from it
    ({"push": "../etc"}, ["Hub repo id", "Received: repo_id='../etc'"]),  # before training, not after
], ids=["limit", "seed", "batch-size", "push"])
def test_bad_run_arguments_are_refused_before_the_run_folder_exists(tmp_path, kwargs, pieces):
    arguments = {"epochs": 1, "batch_size": 32, "limit": 64, "verbose": 0, **kwargs}
    with pytest.raises(ValueError) as error:
        train("cnn", output_dir=tmp_path / "run", **arguments)
    for piece in pieces:
        assert piece in str(error.value), (piece, str(error.value))
    assert not (tmp_path / "run").exists()


def test_resume_into_a_folder_without_a_run_says_that_it_starts_at_epoch_1(tmp_path, capsys):
    """`--resume --output <a mistyped folder>` would start the whole schedule unnoticed: it is said."""
    from zoo.training.run_dir import RunDir
    from zoo.training.run_setup import open_run

    run, done = open_run(tmp_path / "typo", resume=True, overwrite=False, architecture="cnn", settings={},
                         command="", epochs_done=RunDir.backed_up_epochs)
    run.release()
    assert done == 0 and "holds no run yet, so training starts at epoch 1" in capsys.readouterr().out
    run, _ = open_run(tmp_path / "typo", resume=True, overwrite=False, architecture="cnn", settings={},
                      command="", epochs_done=RunDir.backed_up_epochs)  # now it holds one: nothing said
    run.release()
    assert "holds no run yet" not in capsys.readouterr().out


def test_a_missing_data_folder_is_refused_before_the_run_folder_exists(tmp_path, capsys):
    """`--data-dir` mistyped: one line and exit status 2, and no run folder that would block the
    corrected command ("already holds an unfinished run")."""
    from zoo.training.cli import main

    with pytest.raises(FileNotFoundError, match="No Fashion-MNIST IDX files for both splits in data_dir argument"):
        train("cnn", output_dir=tmp_path / "run", epochs=1, limit=64, verbose=0, data_dir=tmp_path / "nowhere")
    assert not (tmp_path / "run").exists()
    with pytest.raises(SystemExit) as stopped:
        main(["cnn", "--data-dir", str(tmp_path / "nowhere"), "--output", str(tmp_path / "run"), "--epochs", "1"])
    assert stopped.value.code == 2 and "No Fashion-MNIST IDX files" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_a_failed_download_or_a_limit_with_nothing_to_train_is_refused_before_the_run_folder_exists(
        tmp_path, monkeypatch, capsys):
    """No IDX folder and no network: the Keras download failed inside the run (its folder left as an
    unfinished run); `--limit 1`: "`val_size` must be in [1, 0]", a setting the user never gave."""
    from zoo.data import fashion_mnist
    from zoo.training.cli import main

    with pytest.raises(ValueError, match=r"`limit` keeps 1 training image\(s\).*Accepted: limit >= 2\. Received: limit=1"):
        train("cnn", output_dir=tmp_path / "run", epochs=1, limit=1, verbose=0)
    assert not (tmp_path / "run").exists()
    with pytest.raises(SystemExit) as stopped:
        main(["cnn", "--limit", "1", "--output", str(tmp_path / "run"), "--epochs", "1"])
    assert stopped.value.code == 2 and "Received: limit=1" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()

    def offline(split):
        raise OSError("URL fetch failure: no network")

    monkeypatch.delenv(fashion_mnist.ENV_VAR, raising=False)
    monkeypatch.setattr(fashion_mnist, "find_data_dir", lambda data_dir=None: None)
    monkeypatch.setattr(fashion_mnist, "_load_from_keras", offline)
    with pytest.raises(FileNotFoundError, match="Fashion-MNIST could not be found.*no network"):
        train("cnn", output_dir=tmp_path / "run", epochs=1, limit=64, verbose=0)
    assert not (tmp_path / "run").exists()


def test_a_backup_whose_state_does_not_fit_the_model_is_refused_on_resume(tmp_path):
    from zoo.training.callbacks import ResumableBackup

    class Killed(Exception):
        pass

    class KillAtEpoch1(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 1:
                raise Killed()

    x = np.random.default_rng(0).uniform(0, 255, (32, 28, 28, 1)).astype("float32")
    y = np.arange(32) % 10

    def compiled():
        model = zoo.create("cnn")
        model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
        return model

    with pytest.raises(Killed):
        compiled().fit(x, y, epochs=2, batch_size=16, verbose=0,
                       callbacks=[ResumableBackup(tmp_path / "backup"), KillAtEpoch1()])
    (state,) = (tmp_path / "backup").glob("*.state.safetensors")
    from safetensors.numpy import load_file, save_file

    arrays = load_file(str(state))
    del arrays[sorted(k for k in arrays if not k.startswith("rng"))[-1]]  # one seed generator fewer
    save_file(arrays, str(state))
    with pytest.raises(ValueError, match="does not fit this model"):
        compiled().fit(x, y, epochs=2, batch_size=16, verbose=0, callbacks=[ResumableBackup(tmp_path / "backup")])


def test_refuses_to_overwrite_a_run(cnn_run):
    before = (cnn_run / "model.safetensors").stat().st_mtime_ns
    with pytest.raises(RunExistsError, match="overwrite"):
        tiny_train("cnn", cnn_run)
    with pytest.raises(RunExistsError, match="already complete"):
        tiny_train("cnn", cnn_run, resume=True)
    assert (cnn_run / "model.safetensors").stat().st_mtime_ns == before


def test_overwrite_replaces_a_complete_run_but_never_a_users_file(cnn_run, tmp_path):
    """Everything a finished run holds is training's to replace; a file the user added is not."""
    import shutil

    copy = tmp_path / "cnn"
    shutil.copytree(cnn_run, copy, ignore=shutil.ignore_patterns(LOCK_NAME))
    (copy / "my-notes.txt").write_text("mine")
    (copy / "model.onnx").write_bytes(b"an export")
    with pytest.raises(RunExistsError, match=r"training did not write: \['model.onnx', 'my-notes.txt'\]"):
        prepare_run_dir(copy, resume=False, overwrite=True)
    assert (copy / "my-notes.txt").read_text() == "mine" and (copy / "model.safetensors").is_file()
    (copy / "my-notes.txt").unlink()
    (copy / "model.onnx").unlink()
    emptied = prepare_run_dir(copy, resume=False, overwrite=True)
    assert [p.name for p in copy.iterdir()] == [LOCK_NAME]
    emptied.release()


def test_a_run_from_initial_weights_trains_on_from_them_and_records_them(cnn_run, tmp_path):
    """--init-from on Fashion-MNIST: every weight starts at the given ones (at a learning rate of
    1e-9 they barely move, while a run from scratch ends elsewhere), and the run records them."""
    from zoo.format import sha256_of
    from zoo.weights import read_weights

    run = tiny_train("cnn", tmp_path / "from-cnn", init_from=cnn_run, lr=1e-9)
    start, end = read_weights(cnn_run / "model.safetensors"), read_weights(run / "last.safetensors")
    assert set(end) == set(start)
    for key in start:
        np.testing.assert_allclose(end[key], start[key], rtol=0, atol=1e-6, err_msg=key)
    scratch = read_weights(tiny_train("cnn", tmp_path / "from-scratch", lr=1e-9) / "last.safetensors")
    assert max(float(np.abs(end[k] - scratch[k]).max()) for k in start) > 1e-2  # random weights: elsewhere
    metadata = read_folder(run).metadata
    assert metadata["base_model"] == "cnn"  # the folder's name, as --data records a folder: no path of this machine
    assert metadata["base_model_sha256"] == {"model.safetensors": sha256_of(cnn_run / "model.safetensors")}
    assert "--init-from cnn " in metadata["train_command"] and str(tmp_path) not in metadata["train_command"]


def test_initial_weights_of_another_model_are_refused_before_the_run_folder_exists(cnn_run, tmp_path):
    with pytest.raises(ValueError) as error:
        train("cnn", output_dir=tmp_path / "run", epochs=1, limit=64, init_from=cnn_run,
              model_overrides={**small_overrides("cnn"), "num_classes": 3})
    assert "num_classes=10" in str(error.value) and "num_classes=3" in str(error.value)
    assert "--data DIR" in str(error.value) and f"Received: init_from={str(cnn_run)!r}" in str(error.value)
    with pytest.raises(ValueError, match="are a 'cnn'; the run trains a 'resnet34'"):
        tiny_train("resnet34", tmp_path / "run", init_from=cnn_run)
    assert not (tmp_path / "run").exists()


def test_a_run_into_the_folder_of_its_initial_weights_is_refused_before_anything_is_deleted(cnn_run, tmp_path):
    """``--init-from runs/cnn-0 --output runs/cnn-0 --overwrite`` deleted the weights it was to start
    from, then failed with a FileNotFoundError: the earlier run was lost."""
    import shutil

    mine = tmp_path / "cnn-0"
    shutil.copytree(cnn_run, mine)
    before = {p.name: p.read_bytes() for p in mine.iterdir() if p.is_file()}
    for init_from in (mine, mine / "model.safetensors"):
        with pytest.raises(ValueError, match=r"lie in the run's output folder.*Choose another output folder.*"
                           r"Received: init_from="):
            tiny_train("cnn", mine, init_from=init_from, overwrite=True)
    with pytest.raises(ValueError, match="lie in the run's output folder"):
        tiny_train("cnn", tmp_path, init_from=mine, overwrite=True)  # a folder above them too
    assert {p.name: p.read_bytes() for p in mine.iterdir() if p.is_file()} == before


def test_a_run_from_initial_weights_resumes_from_its_backup_not_from_them(cnn_run, tmp_path, monkeypatch):
    """After a kill, the backup's state replaces the initial weights: the resumed run ends where an
    uninterrupted one does. Resuming without --init-from (other settings) is refused. The card names
    the machine of each session when a resumed run moved to another one."""
    from zoo.training import fit, report

    whole = tiny_train("cnn", tmp_path / "whole", epochs=2, init_from=cnn_run, lr=0.005)
    assert read_folder(whole).metadata["trained_on"] == report.trained_on()  # one session: the machine alone
    with pytest.raises(Crash):
        tiny_train("cnn", tmp_path / "killed", epochs=2, init_from=cnn_run, lr=0.005, callbacks=[CrashAfterEpoch(0)])
    with pytest.raises(ValueError, match="different settings.*initial_weights"):
        tiny_train("cnn", tmp_path / "killed", epochs=2, lr=0.005, resume=True)
    monkeypatch.setattr(fit, "trained_on", lambda distribution="single device": f"another machine; {distribution}")
    resumed = tiny_train("cnn", tmp_path / "killed", epochs=2, init_from=cnn_run, lr=0.005, resume=True)
    assert_same_run_weights(whole, resumed)
    sessions = json.loads((resumed / "run.json").read_text())["sessions"]  # the refused resume trained nothing
    assert [(s["epochs_done"], s["batches_done"]) for s in sessions] == [(0, 0), (1, 0)]
    assert sessions[0]["trained_on"] == report.trained_on()
    where = f"epoch 1 ({report.trained_on()}) | epoch 2 (another machine; single device)"
    assert read_folder(resumed).metadata["trained_on"] == where
    card = (resumed / "README.md").read_text()
    assert f"Trained on: {where};" in card
    timing = json.loads((resumed / "timing.json").read_text())["epochs"]
    assert [timing[e]["machine"] for e in "01"] == [report.trained_on(), "another machine; single device"]
    by_machine = read_folder(resumed).metadata["training"]["timing"]["images_per_second_by_machine"]
    assert set(by_machine) == {report.trained_on(), "another machine; single device"}
    assert "Images/s by machine: " in card and "on (another machine; single device)." in card
    assert "images_per_second_by_machine" not in read_folder(whole).metadata["training"]["timing"]  # one machine


def test_timing_is_summarized_by_machine_when_a_run_moved(tmp_path):
    from zoo.training.callbacks import summarize_timing

    def epoch(seconds, machine=None):
        return {"seconds": seconds, "images": 1000, "image_size": 28, **({"machine": machine} if machine else {})}

    path = tmp_path / "timing.json"
    path.write_text(json.dumps({"epochs": {"0": epoch(10.0), "1": epoch(50.0, "B"), "2": epoch(50.0, "B")}}))
    timing = summarize_timing(path, epochs=3)
    assert timing["images_per_second"] == round(3000 / 110, 1)
    assert timing["images_per_second_by_machine"] == {"not recorded": 100.0, "B": 20.0}
    path.write_text(json.dumps({"epochs": {"0": epoch(10.0, "B"), "1": epoch(30.0, "B")}}))
    assert "images_per_second_by_machine" not in summarize_timing(path, epochs=2)


def test_an_epoch_slowed_by_something_else_is_left_out_and_the_card_says_why(tmp_path):
    """A run paused for 15 minutes (SIGSTOP, a test suite beside it) timed that epoch with the pause:
    exclude_epoch moves it out of the figures, and the card names it (it was done by hand, unsaid)."""
    from zoo.training.callbacks import exclude_epoch, summarize_timing
    from zoo.training.report import _timing_text
    from zoo.training.run_dir import RunDir, _written_by_train

    path = tmp_path / "timing.json"
    records = {str(i): {"seconds": s, "images": 1000, "image_size": 28} for i, s in enumerate((10.0, 1000.0, 10.0))}
    path.write_text(json.dumps({"epochs": records}))
    assert summarize_timing(path, epochs=3)["images_per_second"] == round(3000 / 1020, 1)
    moved = exclude_epoch(path, 2, "paused 990 s for the test suites")
    assert moved == {"seconds": 1000.0, "images": 1000, "image_size": 28, "reason": "paused 990 s for the test suites"}
    timing = summarize_timing(path, epochs=3)
    assert (timing["epochs_timed"], timing["images_per_second"]) == (2, 100.0)
    assert timing["epochs_excluded"] == {"2": "paused 990 s for the test suites"}
    assert _timing_text(timing).endswith("Left out of these figures (1 epoch(s)): epoch 2: paused 990 s for the test suites.")
    for epoch, reason, words in [(2, "again", r"No timing record of epoch 2 .*Accepted: one of the timed epochs \[1, 3\]"),
                                 (9, "x", "Received: epoch=9"), (1, " ", r"`reason` must be a non-empty string")]:
        with pytest.raises(ValueError, match=words):
            exclude_epoch(path, epoch, reason)
    assert _written_by_train(RunDir(tmp_path), tmp_path / "timing.excluded.json")  # --overwrite may replace it


def test_the_card_names_each_machine_a_run_trained_on():
    from zoo.training.report import trained_on_sessions

    def session(machine, epochs_done, batches_done=0):
        return {"trained_on": machine, "epochs_done": epochs_done, "batches_done": batches_done}

    same = [session("A", 0), session("A", 7, 12), session("A", 30)]
    assert trained_on_sessions(same, current="A", epochs=52) == "A"
    assert trained_on_sessions([], current="A", epochs=52) == "A"  # a run.json from before sessions were kept
    moved = [session("A", 0), session("A", 10), session("B", 19, 40), session("B", 30), session("A", 51)]
    assert trained_on_sessions(moved, current="A", epochs=52) == "epochs 1-20 (A) | epochs 20-51 (B) | epoch 52 (A)"
    # B was started and killed before it trained a batch: A trained everything.
    assert trained_on_sessions([session("A", 0), session("B", 19), session("A", 19)], current="A", epochs=52) == "A"
    # B only wrote the results (killed after the last epoch's backup): A trained everything.
    assert trained_on_sessions([session("A", 0), session("A", 20), session("B", 52)], current="B", epochs=52) == "A"
    # The first sessions were not recorded: what is known, with its epochs.
    assert trained_on_sessions([session("B", 19)], current="B", epochs=52) == "epochs 20-52 (B)"


def test_resnet_tiny_run(tmp_path):
    # resnet34 (the released one); resnet18 is the same builder with fewer units (tests/test_models.py
    # builds, runs and round-trips it, and test_loss_decreases_on_a_fixed_batch trains it).
    run = tiny_train("resnet34", tmp_path / "resnet34", limit=64)
    config = check_run_folder(run, CLASSIFIER_FILES, epochs=1)
    assert config["config"]["stem"] == "small" and config["config"]["input_shape"] == [28, 28, 1]


def test_localizer_tiny_run(tmp_path):
    run = tiny_train("xception_localizer", tmp_path / "loc", limit=64)
    files = CLASSIFIER_FILES | {"boxes.png"}  # the class head's confusion matrix too
    config = check_run_folder(run, files, epochs=1)
    assert config["config"]["input_shape"] == [71, 71, 1]
    assert set(config["metrics"]) == {"accuracy", "class_accuracy", "box_iou", "iou_50"}
    assert 0.0 <= config["metrics"]["box_iou"] <= 1.0
    assert config["dataset"] == "fashion_mnist_localization"
    assert config["recipe"]["fresh_canvases"] is True  # the recipe's default


@pytest.mark.extended  # the opt-out's end-to-end run (~60 s); its canvases are test_localization.py's
def test_localizer_tiny_run_on_fixed_canvases(tmp_path):
    # The recipe draws new canvases every batch (its default since the CPU release); fixed ones are the opt-out.
    run = tiny_train("xception_localizer", tmp_path / "loc", limit=64, recipe_overrides={"fresh_canvases": False})
    config = check_run_folder(run, CLASSIFIER_FILES | {"boxes.png"}, epochs=1)
    assert config["recipe"]["fresh_canvases"] is False
    assert "--set fresh_canvases=false" in config["train_command"]  # the recorded command reproduces it
    assert 0.0 <= config["metrics"]["box_iou"] <= 1.0


# --- resume after a kill, and the evaluate script -------------------------------------------


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="script plumbing; exact resume inside an epoch under every backend is tests/test_mid_epoch_resume.py's: TensorFlow suite only")
@pytest.mark.extended  # kill, resume and evaluate through the scripts (~60 s): test_kill.py kills and resumes, test_cli.py evaluates
def test_resume_after_kill_then_evaluate_script_reproduces_metrics(tmp_path):
    run = tmp_path / "killed"
    command = [sys.executable, str(ROOT / "scripts" / "train.py"), "cnn", "--epochs", "4", "--batch-size", "32",
               "--limit", "640", "--output", str(run), "--verbose", "2"]
    env = {**os.environ, "KERAS_BACKEND": BACKEND}
    with open(tmp_path / "first.log", "w") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
        backed_up = run / "backup" / "training_metadata.json"
        deadline = time.monotonic() + 240
        while not backed_up.exists() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert process.poll() is None, "training ended before the first epoch was backed up:\n" + (
            tmp_path / "first.log").read_text()[-3000:]
        process.send_signal(signal.SIGKILL)  # at once: a backup survives a kill at any moment
        assert process.wait(timeout=60) == -signal.SIGKILL
    assert not (run / "config.json").exists()
    assert json.loads((run / "run.json").read_text())["status"] == "training"
    done = json.loads(backed_up.read_text())["epoch"]
    assert 1 <= done < 4

    resumed = subprocess.run(command + ["--resume"], capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert "[zoo] cnn: test accuracy" in resumed.stdout
    config = check_run_folder(run, CLASSIFIER_FILES, epochs=4)
    training = config["training"]
    assert training["resumed_from_epoch"] == done
    # The optimizer state came back: its step counter covers all 4 epochs of 18 steps.
    assert training["optimizer_steps"] == 4 * (576 // 32)

    evaluated = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "evaluate.py"), str(run), "--limit", "640", "--json"],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=300,
    )
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    printed = json.loads(evaluated.stdout[evaluated.stdout.index("{"):])
    assert printed == json.loads((run / "metrics.json").read_text())


# --- --push ---------------------------------------------------------------------------------


def test_push_uploads_the_run_folder(tmp_path, local_hub, monkeypatch):
    from huggingface_hub import HfApi

    monkeypatch.setenv("HF_ENDPOINT", local_hub.endpoint)
    run = tiny_train("cnn", tmp_path / "pushed", limit=64, push="tester/cnn-run")
    files = set(HfApi(endpoint=local_hub.endpoint).list_repo_files("tester/cnn-run"))
    assert {"config.json", "metadata.json", "model.safetensors", "README.md", "metrics.json", "confusion_matrix.png"} <= files
    assert "last.safetensors" not in files
    card = local_hub.file_bytes("tester/cnn-run", "README.md", "main").decode()
    assert "hf://tester/cnn-run" in card
    x, _ = load_fashion_mnist("test", limit=8)
    np.testing.assert_array_equal(zoo.load("hf://tester/cnn-run").predict(x, verbose=0), zoo.load(run).predict(x, verbose=0))
