"""Fine-tuning on a user's image folder (scripts/train.py --data/--init-from/--freeze-backbone)
and the feature-extractor form (include_top=False) of every architecture.

The folder: 3 classes x 12 Fashion-MNIST test images saved as PNG and JPEG, gray and RGB, of
different sizes. Every run is 1-2 epochs of the cnn on it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import keras
import numpy as np
import pytest
from conftest import ROOT, sample_batch, small_overrides
from PIL import Image

import zoo
from zoo.data import find_data_dir, load_fashion_mnist
from zoo.data.folder import load_images
from zoo.format import read_folder, save_folder
from zoo.registry import get_spec
from zoo.training.cli import main as train_main
from zoo.training.finetune import finetune
from zoo.training.run_dir import RunLock
from zoo.weights import WeightsMismatchError, model_state, read_weights, save_weights

pytestmark = pytest.mark.skipif(find_data_dir() is None, reason="needs the Fashion-MNIST files")
#: Fine-tuning runs (marked `pipeline`) run in the TensorFlow and PyTorch suites; the feature
#: extractors (include_top=False) at the end are the model layer and run in every suite.
pipeline = pytest.mark.pipeline
CLASSES = {9: "boot", 5: "sandal", 7: "sneaker"}
NAMES = sorted(CLASSES.values())
RELEASED_CNN = ROOT / "weights" / "cnn.fmnist"
HEAD = ("predictions/kernel", "predictions/bias")


def arrays(model: keras.Model) -> dict[str, np.ndarray]:
    return {key: np.array(keras.ops.convert_to_numpy(v)) for key, v in model_state(model).items()}


@pytest.fixture(scope="module")
def pictures(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("finetune") / "pictures"
    x, y = load_fashion_mnist("test", limit=1000)
    for label, name in CLASSES.items():
        (root / name).mkdir(parents=True)
        for i, index in enumerate(np.flatnonzero(y == label)[:12]):
            picture = Image.fromarray(x[index, ..., 0])
            if i % 3 == 0:
                picture.save(root / name / f"{i}.png")
            elif i % 3 == 1:
                picture.convert("RGB").resize((56, 56)).save(root / name / f"{i}.jpg", quality=95)
            else:
                picture.resize((40, 52)).save(root / name / f"{i}.jpeg", quality=95)
    return root


@pytest.fixture(scope="module")
def probe_run(pictures, tmp_path_factory) -> Path:
    """``scripts/train.py cnn --data ... --init-from cnn --freeze-backbone --epochs 1``: a pure linear probe."""
    run = tmp_path_factory.mktemp("probe") / "run"
    done = subprocess.run(
        [sys.executable, "scripts/train.py", "cnn", "--data", str(pictures), "--init-from", "cnn",
         "--freeze-backbone", "--epochs", "1", "--output", str(run), "--verbose", "0"],
        capture_output=True, text=True, cwd=ROOT, timeout=600,
        env={**os.environ, "KERAS_BACKEND": keras.backend.backend()},
    )
    assert done.returncode == 0, done.stderr[-4000:]
    assert "[zoo] cnn: validation accuracy" in done.stdout
    return run


@pipeline
def test_the_script_writes_a_run_that_loads_and_predicts_the_folder_names(probe_run, pictures):
    folder = read_folder(probe_run)
    metadata = folder.metadata
    assert folder.build["tag"] is None and folder.config["num_classes"] == 3
    assert metadata["label_names"] == NAMES
    assert (metadata["base_model"], metadata["base_model_repo"]) == ("cnn.fmnist", "keras-zoo/cnn.fmnist")
    assert metadata["preprocessing"]["polarity"] == "light_on_dark"
    assert metadata["preprocessing"]["resize"] == "fit_and_pad"
    assert metadata["evaluation"]["split"] == "validation"
    assert metadata["data"]["classes"] == NAMES and metadata["data"]["examples"] == {"train": 29, "val": 7}
    assert [p["name"] for p in metadata["training"]["phases"]] == ["probe"]
    assert "--data pictures --init-from cnn.fmnist --freeze-backbone" in metadata["train_command"]
    assert "validation (the metrics above)" in (probe_run / "README.md").read_text()
    model = zoo.load(probe_run)
    assert model.output_shape == (None, 3)
    files = sorted(pictures.glob("*/*"))
    x, _ = load_images(files, (28, 28, 1), metadata["preprocessing"])
    assert model.predict(x, verbose=0).shape == (len(files), 3)  # one probability per folder name
    # (One probe epoch is a step or two: its accuracy is not the point, measured 67% under TF, 33% under torch.)
    # The pictures reach the backbone as Fashion-MNIST did: its features separate the classes.
    features = zoo.load(probe_run, include_top=False).predict(x, verbose=0)
    labels = np.array([NAMES.index(path.parent.name) for path in files])
    means = np.stack([features[labels == k].mean(axis=0) for k in range(3)])
    nearest = np.argmin(((features[:, None] - means[None]) ** 2).sum(axis=-1), axis=1)
    assert np.mean(nearest == labels) > 0.8


@pipeline
def test_the_linear_probe_kept_every_backbone_weight_and_trained_a_new_head(probe_run):
    trained = read_weights(probe_run / "model.safetensors")
    released = read_weights(RELEASED_CNN / "model.safetensors")
    assert set(trained) == set(released)
    for key in set(released) - set(HEAD):
        np.testing.assert_array_equal(trained[key], released[key], err_msg=key)
    assert trained["predictions/kernel"].shape == (64, 3)
    last = read_weights(probe_run / "last.safetensors")
    for key in set(released) - set(HEAD):
        np.testing.assert_array_equal(last[key], released[key], err_msg=key)


@pipeline
def test_predict_uses_the_folder_names(probe_run, pictures):
    from zoo.prediction import predict

    [prediction] = predict(str(probe_run), [sorted((pictures / "boot").glob("*.png"))[0]], top_k=3)
    assert sorted(label for label, _ in prediction.top_k) == NAMES


class Snapshots(keras.callbacks.Callback):
    """The model's weights when each phase starts and ends."""

    def __init__(self):
        super().__init__()
        self.phases: list[tuple[dict, dict]] = []

    def on_train_begin(self, logs=None):
        self.start = arrays(self.model)

    def on_train_end(self, logs=None):
        self.phases.append((self.start, arrays(self.model)))


@pipeline
def test_a_probe_then_an_unfrozen_phase_at_a_lower_rate(pictures, tmp_path):
    snapshots = Snapshots()
    run = finetune(
        "cnn", data=pictures, init_from="cnn", output_dir=tmp_path / "run", freeze_backbone=True,
        probe_epochs=1, epochs=2, callbacks=[snapshots], verbose=0,
    )
    released = read_weights(RELEASED_CNN / "model.safetensors")
    (probe_start, probe_end), (unfrozen_start, unfrozen_end) = snapshots.phases
    backbone = sorted(set(released) - set(HEAD))
    for key in backbone:
        np.testing.assert_array_equal(probe_start[key], released[key])
        np.testing.assert_array_equal(probe_end[key], released[key])  # frozen: not one step moved it
    assert all(not np.array_equal(probe_start[k], probe_end[k]) for k in HEAD)  # the head trained
    assert any(not np.array_equal(unfrozen_start[k], unfrozen_end[k]) for k in backbone)  # then everything trains
    metadata = read_folder(run).metadata
    probe, unfrozen = metadata["training"]["phases"]
    assert (probe["name"], probe["epochs"], probe["trains"]) == ("probe", [1, 1], "the head only")
    assert (unfrozen["name"], unfrozen["epochs"], unfrozen["trains"]) == ("unfrozen", [2, 2], "every layer")
    assert unfrozen["lr"] < probe["lr"]
    history = (run / "history.csv").read_text().strip().splitlines()
    assert [line.split(",")[0] for line in history[1:]] == ["0", "1"]
    assert not (run / "backup").exists() and not (run / "best").exists()


@pipeline
def test_a_batch_capped_at_the_folders_size_scales_the_rate_with_it(probe_run):
    from zoo.training.transfer import finetune_recipe

    recipe = read_folder(probe_run).metadata["recipe"]
    full = finetune_recipe("cnn", from_weights=True)
    assert recipe["batch_size"] < full.batch_size  # 3 classes of 12 pictures: fewer than a batch
    assert recipe["lr"] == pytest.approx(full.lr * recipe["batch_size"] / full.batch_size)


@pipeline
def test_a_run_from_a_local_folder_records_its_name_not_its_path(pictures, tmp_path):
    run = finetune("cnn", data=pictures, init_from=RELEASED_CNN, output_dir=tmp_path / "run", epochs=1, verbose=0)
    recorded = (run / "metadata.json").read_text()
    assert str(ROOT) not in recorded and str(tmp_path) not in recorded and str(pictures) not in recorded
    metadata = json.loads(recorded)
    assert metadata["base_model"] == "cnn.fmnist" and metadata["fine_tuning"]["init_from"] == "cnn.fmnist"
    assert "--data pictures --init-from cnn.fmnist" in metadata["train_command"]


@pipeline
def test_a_fine_tune_into_the_folder_of_its_initial_weights_is_refused(pictures, tmp_path):
    import shutil

    mine = tmp_path / "mine"
    shutil.copytree(RELEASED_CNN, mine)
    before = {p.name: p.read_bytes() for p in mine.iterdir()}
    with pytest.raises(ValueError, match=r"lie in the run's output folder.*Received: init_from="):
        finetune("cnn", data=pictures, init_from=mine, output_dir=mine, overwrite=True, epochs=1, verbose=0)
    assert {p.name: p.read_bytes() for p in mine.iterdir()} == before


class _Stop(Exception):
    pass


class StopAtEpoch(keras.callbacks.Callback):
    def __init__(self, epoch: int):
        super().__init__()
        self.epoch = epoch

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.epoch:
            raise _Stop()


@pipeline
def test_a_killed_run_resumes_after_its_probe(pictures, tmp_path, monkeypatch):
    flags = dict(data=pictures, init_from="cnn", output_dir=tmp_path / "run", freeze_backbone=True,
                 probe_epochs=1, epochs=2, verbose=0)
    killed = Snapshots()
    with pytest.raises(_Stop) as stopped:
        finetune("cnn", callbacks=[killed, StopAtEpoch(1)], **flags)
    assert json.loads((tmp_path / "run" / "run.json").read_text())["status"] == "training"
    # The tracebacks keep the failed runs' objects alive: only an explicit release frees the folder.
    RunLock(tmp_path / "run").acquire().release()
    with pytest.raises(ValueError, match="different settings") as refused:
        finetune("cnn", resume=True, **{**flags, "epochs": 3})
    RunLock(tmp_path / "run").acquire().release()
    # The same number of pictures, one of them another picture: not the run it continues.
    edited = tmp_path / "edited"
    shutil.copytree(pictures, edited)
    shutil.copy2(sorted((edited / "sandal").glob("*.png"))[0], sorted((edited / "boot").glob("*.png"))[0])
    with pytest.raises(ValueError, match="different settings.*pictures_files_sha256") as changed:
        finetune("cnn", resume=True, **{**flags, "data": edited})
    RunLock(tmp_path / "run").acquire().release()
    metadata = json.loads((tmp_path / "run" / "run.json").read_text())["settings"]
    assert set(metadata["initial_weights"]["base_model_sha256"]) == {"model.safetensors"}
    del stopped, refused, changed
    # Another machine's decoder may round the same files' pixels differently: the same pictures still.
    from zoo.data import folder as folder_module

    def decoded_elsewhere(*args, **kwargs):
        images, notes = load_images(*args, **kwargs)
        return images ^ np.uint8(1), notes

    monkeypatch.setattr(folder_module, "load_images", decoded_elsewhere)
    resumed = Snapshots()
    run = finetune("cnn", resume=True, callbacks=[resumed], **flags)
    assert len(resumed.phases) == 1  # the probe was not trained again
    probe_end, start = killed.phases[0][1], resumed.phases[0][0]
    for key, value in probe_end.items():
        np.testing.assert_array_equal(start[key], value, err_msg=key)  # the unfrozen phase starts where the probe ended
    history = (run / "history.csv").read_text().strip().splitlines()
    assert [line.split(",")[0] for line in history[1:]] == ["0", "1"]
    assert read_folder(run).metadata["training"]["resumed_from_epoch"] == 1
    sessions = json.loads((run / "run.json").read_text())["sessions"]  # the refused resumes trained nothing
    assert [session["epochs_done"] for session in sessions] == [0, 1]
    assert read_folder(run).metadata["trained_on"] == sessions[0]["trained_on"]  # one machine: named once


class StopAfterLastEpoch(keras.callbacks.Callback):
    """Fails after the run's last epoch was backed up (plan callbacks come after the backup), before the
    results are written; keeps the weights it stopped at."""

    def __init__(self, last: int):
        super().__init__()
        self.last = last

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.last:
            self.weights = arrays(self.model)
            raise _Stop()


@pipeline
def test_a_run_killed_after_its_last_backup_resumes_to_its_last_weights_and_best_record(pictures, tmp_path):
    flags = dict(data=pictures, init_from="cnn", output_dir=tmp_path / "run", freeze_backbone=True,
                 probe_epochs=1, epochs=2, verbose=0)
    stop = StopAfterLastEpoch(1)
    with pytest.raises(_Stop) as stopped:
        finetune("cnn", callbacks=[stop], **flags)
    best = json.loads((tmp_path / "run" / "best" / "best.json").read_text())
    RunLock(tmp_path / "run").acquire().release()
    del stopped
    resumed = Snapshots()
    run = finetune("cnn", resume=True, callbacks=[resumed], **flags)
    assert resumed.phases == []  # nothing left to train
    last = read_weights(run / "last.safetensors")
    assert set(last) == set(stop.weights)
    for key, value in stop.weights.items():
        np.testing.assert_array_equal(last[key], value, err_msg=key)  # where the run ended, not where it began
    recorded = read_folder(run).metadata["training"]["best"]
    assert (recorded["value"], recorded["epoch"]) == (best["value"], best["epoch"] + 1)


# --- kill -9 during a fine-tune run, then --resume (as tests/test_kill.py does for train) ---------

#: Largest difference allowed between the weights of a resumed and an uninterrupted fine-tune run
#: (measured: 0.0 on TensorFlow and torch on CPU, both kill points; with Keras' BackupAndRestore and
#: its batch shuffling: 0.0027-0.0032 on TensorFlow, 0.0035-0.0045 on torch).
RESUME_TOLERANCE = 1e-6


def _finetune_args(pictures: Path, probe_epochs: int) -> list[str]:
    # 29 training pictures in batches of 8: 3 steps an epoch, so the batch order matters.
    return ["scripts/train.py", "cnn", "--data", str(pictures), "--init-from", "cnn", "--freeze-backbone",
            "--probe-epochs", str(probe_epochs), "--epochs", "5", "--batch-size", "8", "--seed", "3",
            "--verbose", "0"]


def _finetune_backed_up(run: Path) -> int:
    """Epochs done according to the phases' backups (``backup/<phase>/training_metadata.json``)."""
    done = 0
    for path in (run / "backup").glob("*/training_metadata.json"):
        try:
            done = max(done, int(json.loads(path.read_text())["epoch"]))
        except (OSError, ValueError, KeyError):
            pass
    return done


@pipeline
@pytest.mark.slow
@pytest.mark.parametrize("probe_epochs", [
    pytest.param(1, id="killed-after-the-probe"),
    # the kill inside the probe phase: the same resume path from another backup (~55 s): extended
    pytest.param(2, id="killed-in-the-probe", marks=pytest.mark.extended)])
def test_kill_9_during_finetune_then_resume_ends_at_the_uninterrupted_weights(pictures, tmp_path, probe_epochs):
    env = {**os.environ, "KERAS_BACKEND": keras.backend.backend(), "TF_CPP_MIN_LOG_LEVEL": "3"}
    args = [sys.executable, *_finetune_args(pictures, probe_epochs)]
    full, killed = tmp_path / "full", tmp_path / "killed"
    done = subprocess.run([*args, "--output", str(full)], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]

    with open(tmp_path / "killed.log", "w") as log:
        process = subprocess.Popen([*args, "--output", str(killed)], cwd=ROOT, env=env, stdout=log,
                                   stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 300
        while _finetune_backed_up(killed) < 1 and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert process.poll() is None, "ended before the kill:\n" + (tmp_path / "killed.log").read_text()[-3000:]
        process.send_signal(signal.SIGKILL)
        assert process.wait(timeout=60) == -signal.SIGKILL
    history = killed / "history.csv"
    logged = len(history.read_text().strip().splitlines()) - 1 if history.exists() else 0
    backed_up = _finetune_backed_up(killed)
    assert 1 <= backed_up < 5 and not (killed / "config.json").exists()

    resumed = subprocess.run([*args, "--output", str(killed), "--resume"], cwd=ROOT, env=env, capture_output=True,
                             text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert read_folder(killed).metadata["training"]["resumed_from_epoch"] == backed_up
    assert logged - backed_up <= 1  # at most the epoch in progress (and its log row) was lost
    differences = {}
    for name in ("last.safetensors", "model.safetensors"):
        expected, actual = read_weights(full / name), read_weights(killed / name)
        assert set(actual) == set(expected)
        for key in expected:
            differences[f"{name}: {key}"] = float(np.max(np.abs(actual[key].astype(np.float64) - expected[key])))
    worst = max(differences, key=differences.get)
    assert differences[worst] <= RESUME_TOLERANCE, (
        f"killed after epoch {backed_up}: largest difference {differences[worst]:.3g} in {worst}; "
        f"{sum(d > RESUME_TOLERANCE for d in differences.values())}/{len(differences)} arrays differ")
    rows = (killed / "history.csv").read_text().strip().splitlines()[1:]
    assert [row.split(",")[0] for row in rows] == ["0", "1", "2", "3", "4"]


def test_a_linked_picture_folder_is_recorded_by_its_own_name_and_full_size_resolutions_are_taken(tmp_path, monkeypatch):
    """`--data photos` (a link to .../DCIM) was recorded as `--data DCIM`; `--set 'resolutions=[[0,28]]'`
    trains as a fine-tune does and is not refused; `~/...` folders are the user's home."""
    from zoo.training.finetune import prepare_finetune

    store = tmp_path / "store" / "DCIM"
    for name in ("boot", "sandal"):
        (store / name).mkdir(parents=True)
        for i in range(4):
            Image.fromarray(np.full((28, 28), 40 * i, np.uint8)).save(store / name / f"{i}.png")
    (tmp_path / "photos").symlink_to(store)
    monkeypatch.setenv("HOME", str(tmp_path))
    for data, output, name in [(tmp_path / "photos", tmp_path / "run", "photos"), ("~/photos", "~/run2", "photos")]:
        plan = prepare_finetune("cnn", data=data, output_dir=output, epochs=1, verbose=0,
                                recipe_overrides={"resolutions": [[0, 28]]})
        try:
            assert f"--data {name} " in plan.run.read_marker()["command"] + " "
            assert plan.run.path == Path(str(output)).expanduser()
        finally:
            plan.run.release()


def _broken_folder(root: Path, problem: str) -> Path:
    root.mkdir(parents=True)
    if problem == "loose":
        Image.fromarray(np.zeros((28, 28), np.uint8)).save(root / "a.png")
        return root
    for name in ("boot", "sandal"):
        (root / name).mkdir()
        for picture in ("a.png", "b.png"):  # two a class: one can go to the validation split
            Image.fromarray(np.zeros((28, 28), np.uint8)).save(root / name / picture)
    if problem == "empty_class":
        (root / "sneaker").mkdir()
    if problem == "unreadable":
        (root / "sandal" / "b.jpg").write_bytes(b"not a jpeg")
    return root


@pipeline
@pytest.mark.parametrize(
    "problem, flags, message",
    [
        ("loose", [], "has no class sub-folders (it holds 1 file(s) (['a.png']) directly)"),
        ("empty_class", [], "Class folder(s) without pictures in"),
        ("unreadable", [], "b.jpg"),
        ("missing", [], "does not exist. Received: data="),
        (None, ["--freeze-backbone"], "need(s) --data DIR"),
        (None, ["--init-from", "xception_localizer"], "are a 'xception_localizer'; the run trains a 'cnn'"),
        (None, ["--init-from", "nope"], "Unknown model 'nope'"),
        ("ok", ["--freeze-backbone"], "needs trained weights to start from"),
        ("ok", ["--probe-epochs", "2", "--init-from", "cnn"], "pass freeze_backbone=True (--freeze-backbone)"),
        ("ok", ["--freeze-backbone", "--probe-epochs", "0", "--init-from", "cnn"], "--probe-epochs >= 1"),
        ("ok", ["--freeze-backbone", "--probe-epochs", "3", "--epochs", "2", "--init-from", "cnn"],
         "probe_epochs=3 > epochs=2"),
        ("ok", ["--init-from", "resnet34"], "No released weights for 'resnet34.fmnist'"),
        ("ok", ["--limit", "10"], "--limit and --data-dir are for Fashion-MNIST runs"),
        ("ok", ["--set", "resolutions=[[0,16],[5,28]]"], "`resolutions` (progressive resizing) and `restarts` are "
         "for Fashion-MNIST recipe runs. Accepted: none of them (--set 'resolutions=[]'). Received: resolutions=[[0, 16], [5, 28]]"),
        ("ok", ["--set", "restarts=[[6,0.5]]"], "Received: resolutions=[], restarts=[[6, 0.5]]"),
    ],
)
def test_bad_input_ends_with_one_error_line_and_writes_nothing(tmp_path, capsys, unreleased, problem, flags, message):
    unreleased("resnet34.fmnist")  # the --init-from case's tag, unreleased whether or not the checkout has it
    data = ["--data", str(_broken_folder(tmp_path / "pictures", problem))] if problem not in (None, "missing") else []
    if problem == "missing":
        data = ["--data", str(tmp_path / "nowhere")]
    with pytest.raises(SystemExit) as exit_:
        train_main(["cnn", *data, *flags, "--output", str(tmp_path / "run"), "--verbose", "0"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("scripts/train.py: error: ") and message in err, err
    assert err.count("\n") == 1 and not (tmp_path / "run").exists()


@pipeline
def test_other_architectures_and_tasks_are_refused(pictures, tmp_path, capsys):
    for argv, message in [
        (["resnet18", "--init-from", "cnn"], "The weights of 'cnn' are a 'cnn'; the run trains a 'resnet18'"),
        (["xception_localizer"], "they fine-tune classifiers. 'xception_localizer' is a localization model"),
    ]:
        with pytest.raises(SystemExit):
            train_main([*argv, "--data", str(pictures), "--output", str(tmp_path / "run")])
        assert message in capsys.readouterr().err
    with pytest.raises(SystemExit):
        train_main(["cnn", "--data", str(pictures), "--output", str(pictures / "runs")])
    assert "lies inside the image folder" in capsys.readouterr().err


@pipeline
def test_an_existing_run_folder_is_never_replaced_without_overwrite(probe_run, pictures, capsys, tmp_path):
    before = (probe_run / "model.safetensors").read_bytes()
    with pytest.raises(SystemExit):
        train_main(["cnn", "--data", str(pictures), "--init-from", "cnn", "--output", str(probe_run)])
    assert "already holds a complete run. Pass resume=True (--resume)" in capsys.readouterr().err
    assert (probe_run / "model.safetensors").read_bytes() == before
    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(SystemExit):
        train_main(["cnn", "--data", str(pictures), "--output", str(other), "--overwrite"])
    assert "is not a zoo run folder" in capsys.readouterr().err
    assert (other / "notes.txt").read_text() == "mine"


# --- the feature-extractor form of every architecture --------------------------------------------

FEATURES = {"cnn": 64, "resnet18": 512, "resnet34": 512, "xception_localizer": 2048}


@pytest.mark.parametrize("name", sorted(FEATURES))
def test_include_top_false_gives_pooled_features_with_every_backbone_weight(name, tmp_path):
    full = zoo.create(name, **small_overrides(name))
    save_weights(full, tmp_path / "model.safetensors")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        features = zoo.load(name, weights=tmp_path / "model.safetensors", include_top=False, **small_overrides(name))
    assert not [w for w in caught if issubclass(w.category, UserWarning)]  # no word about the missing head
    assert features.output_shape == (None, FEATURES[name])
    full_arrays, feature_arrays = arrays(full), arrays(features)
    head = {key for key in full_arrays if key.split("/")[0] in get_spec(name).head}
    assert head and set(feature_arrays) == set(full_arrays) - head
    for key, value in feature_arrays.items():
        np.testing.assert_array_equal(value, full_arrays[key], err_msg=key)
    x = sample_batch(features)
    expected = keras.ops.convert_to_numpy(features(x, training=False))
    assert expected.shape == (2, FEATURES[name]) and np.all(np.isfinite(expected))


@pytest.mark.parametrize("name", ["cnn", "resnet18", "xception_localizer"])  # resnet34: resnet18's builder
def test_include_top_false_round_trips_through_config_and_keras_files(name, tmp_path):
    features = zoo.create(name, **small_overrides(name), include_top=False)
    x = sample_batch(features)
    expected = keras.ops.convert_to_numpy(features(x, training=False))
    clone = type(features).from_config(json.loads(json.dumps(features.get_config())))
    clone.set_weights(features.get_weights())
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(clone(x, training=False)), expected)
    features.save(tmp_path / "features.keras")
    loaded = keras.saving.load_model(tmp_path / "features.keras", safe_mode=True)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(loaded(x, training=False)), expected)


def test_the_released_cnn_loads_as_a_feature_extractor(tmp_path):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        features = zoo.load("cnn", include_top=False)
    assert not [w for w in caught if issubclass(w.category, UserWarning)]
    full = arrays(zoo.load("cnn"))
    assert set(arrays(features)) == set(full) - set(HEAD)
    for key, value in arrays(features).items():
        np.testing.assert_array_equal(value, full[key])
    zoo.save_weights(features, tmp_path / "features.safetensors")
    with pytest.raises(WeightsMismatchError, match=r"Missing keys \(2\): \['predictions/bias', 'predictions/kernel'\]"):
        zoo.load_weights(zoo.create("cnn"), tmp_path / "features.safetensors")
    # Told which layers are the head, the backbone loads and the head stays fresh (as zoo.load
    # of a feature extractor's folder with include_top=True or a num_classes does).
    with pytest.warns(UserWarning, match=r"have no head .*\(\['predictions'\]\) keeps its fresh initialisation"):
        report = zoo.load_weights(zoo.create("cnn"), tmp_path / "features.safetensors", head=("predictions",))
    assert report.reinitialized == ["predictions/bias", "predictions/kernel"]
    save_folder(features, tmp_path / "feat")
    for overrides in ({"include_top": True}, {"include_top": True, "num_classes": 5}):
        with pytest.warns(UserWarning, match="have no head"):
            headed = zoo.load(tmp_path / "feat", **overrides)
        trained = arrays(headed)
        assert all(np.array_equal(trained[key], value) for key, value in arrays(features).items())
        assert headed.output_shape == (None, overrides.get("num_classes", 10))
    with pytest.raises(ValueError, match="Received: include_top='no'"):
        zoo.create("cnn", include_top="no")


def test_a_run_begun_with_the_decoded_pictures_hash_resumes_with_it(pictures, tmp_path):
    """run.json of an earlier zoo holds `pictures_sha256` (of the decoded pixels): its resume is
    compared with that hash, not refused for a key it never had; new runs hash the files."""
    from zoo.data.folder import load_image_folder
    from zoo.training.finetune import _decoded_pictures_sha256, _pictures_record, _pictures_sha256

    folder = load_image_folder(pictures, (28, 28, 1))
    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_text(json.dumps({"settings": {"pictures_sha256": "recorded earlier"}}))
    assert _pictures_record(folder, run, resume=True) == {"pictures_sha256": _decoded_pictures_sha256(folder)}
    assert _pictures_record(folder, run, resume=False) == {"pictures_files_sha256": _pictures_sha256(folder)}
    assert _pictures_record(folder, tmp_path / "new", resume=True) == {"pictures_files_sha256": _pictures_sha256(folder)}
