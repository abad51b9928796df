"""CPU-budget training (issue 11): progressive resizing, learning-rate scaling, --backend."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
from conftest import ROOT, Crash, CrashAfterEpoch, assert_same_run_weights

#: Training at each size runs in every suite (the GPU release trains this way under JAX); the
#: resume bookkeeping is pipeline plumbing (`pipeline` marker: TensorFlow and PyTorch suites); the
#: --backend re-execution (argv and environment) runs once, in the TensorFlow suite (`slow`).

import zoo
from zoo.data import ArrayDataset
from zoo.data.fashion_mnist import find_data_dir
from zoo.data.resize import check_resolutions, resize_batch, resize_matrix
from zoo.format import read_folder
from zoo.training import Recipe, get_recipe, train
from zoo.training.fit import scaled_lr, training_phases
from zoo.training.run_setup import check_resume, open_run
from zoo.recipe import changes_before, stretch_resolutions
from zoo.training.run_dir import RunDir, prepare_run_dir

BACKEND = keras.backend.backend()

#: ResNet-34's CPU recipe as its release run began it (52 epochs: 16 px, 22 px from epoch 18, 28 px
#: from 24, a warm restart at 40), fixed here: these tests check the schedule arithmetic on it, not
#: the recipe's current length.
RESNET34_52 = get_recipe("resnet34").replace(epochs=52, resolutions=((0, 16), (18, 22), (24, 28)), restarts=((40, 0.2),))


def _data_dir() -> Path | None:
    return find_data_dir()


needs_data = pytest.mark.skipif(_data_dir() is None, reason="needs Fashion-MNIST ($FASHION_MNIST_DIR or dataset-fashion-mnist)")


# --- resizing --------------------------------------------------------------------------------


def test_resize_keeps_constants_and_averages_blocks():
    batch = np.full((3, 28, 28, 1), 77, np.uint8)
    assert np.all(resize_batch(batch, 16) == 77) and np.all(resize_batch(batch, 40) == 77)
    # Halving: each output pixel is a weighted mean of its neighbourhood, symmetric around
    # the 2x2 block it covers; a checkerboard of 2x2 blocks of 0 and 200 goes to a uniform-ish grey.
    rows = np.arange(8)[:, None] // 2
    cols = np.arange(8)[None, :] // 2
    board = (((rows + cols) % 2) * 200).astype(np.float32)[None, :, :, None]
    half = resize_batch(board, 4)[0, :, :, 0]
    assert half.shape == (4, 4)
    assert half.min() > 40 and half.max() < 160  # antialiased: no aliasing to pure 0/200
    np.testing.assert_allclose(resize_matrix(28, 16).sum(axis=1), 1.0, rtol=1e-6)
    assert resize_batch(batch, 28) is batch


def test_resize_matches_a_mean_for_integer_factors_on_smooth_images():
    x = np.linspace(0, 255, 28, dtype=np.float32)
    image = np.broadcast_to(x[None, :], (28, 28))[None, :, :, None]
    small = resize_batch(image, 14)[0, 0, :, 0]
    means = x.reshape(14, 2).mean(axis=1)
    np.testing.assert_allclose(small[1:-1], means[1:-1], atol=1e-3)  # linear ramp: exact inside


@pytest.mark.parametrize(
    "bad", [[(1, 16)], [(0, 16), (0, 20)], [(0, 0)], [(0, 16.5)], [(0,)], "16", [(0, True)], [(0, float("inf"))]]
)
def test_bad_resolution_schedules_are_refused(bad):
    with pytest.raises(ValueError, match="resolutions"):
        check_resolutions(bad)


def test_dataset_resizes_batches_to_the_size_it_is_given():
    x = np.random.default_rng(0).integers(0, 255, (8, 28, 28, 1)).astype(np.uint8)
    ds = ArrayDataset(x, np.arange(8), batch_size=4, dtype="uint8", image_size=16)
    assert ds[0][0].shape == (4, 16, 16, 1) and ds[0][0].dtype == np.uint8
    ds.set_image_size(None)
    assert ds[1][0].shape == (4, 28, 28, 1)
    with pytest.raises(ValueError, match="image_size"):
        ds.set_image_size(0)
    with pytest.raises(ValueError, match="classification.*Received: image_size=16$"):
        ArrayDataset(x, {"class": np.arange(8), "box": np.zeros((8, 4))}, image_size=16)


# --- recipes ---------------------------------------------------------------------------------


def test_epochs_override_stretches_the_resolution_schedule():
    recipe = get_recipe("resnet34")
    assert recipe.resolutions[-1][1] == 28 and recipe.resolutions[0] == (0, 16)
    assert stretch_resolutions(recipe.resolutions, recipe.epochs, recipe.epochs) == recipe.resolutions
    for epochs in (1, 2, 3, 7, 40, 100):
        stretched = get_recipe("resnet34", epochs=epochs).resolutions
        assert stretched[-1][1] == 28 and stretched[0][0] == 0 and stretched[-1][0] < epochs
    with pytest.raises(ValueError, match="must start before the last epoch"):
        Recipe(arch="x", epochs=3, resolutions=((0, 16), (3, 28)))
    with pytest.raises(ValueError, match="classification"):
        Recipe(arch="x", task="localization", pad_crop=0, resolutions=((0, 16),))


def test_batch_size_override_scales_the_learning_rate_unless_lr_is_given():
    recipe = get_recipe("resnet34")
    assert scaled_lr(recipe, recipe.batch_size // 2, None) == pytest.approx(recipe.lr / 2)
    assert scaled_lr(recipe, 128, 0.3) == 0.3
    assert scaled_lr(recipe, None, None) is None


def test_resume_accepts_recipe_fields_added_later_at_their_default_but_not_another_backend(tmp_path):
    run = prepare_run_dir(tmp_path / "run", resume=False, overwrite=False)
    recipe = get_recipe("cnn")
    settings = {"name": "cnn", "recipe": recipe.to_dict(), "model_overrides": {}, "seed": 0, "limit": None}
    old = {**settings, "recipe": {k: v for k, v in recipe.to_dict().items() if k != "resolutions"}}
    run.write_marker(settings=old)
    check_resume(run, settings)  # a field that did not exist then, at its default: fine
    changed = {**settings, "recipe": {**settings["recipe"], "resolutions": [[0, 16], [1, 28]]}}
    with pytest.raises(ValueError, match=r"different settings \(recipe.resolutions: None -> \[\[0, 16\], \[1, 28\]\]\)"):
        check_resume(run, changed)
    at_input_size = {**settings, "recipe": {**settings["recipe"], "resolutions": [[0, 28]]}}  # cnn takes 28x28
    assert check_resume(run, at_input_size, epochs_begun=2)["to"] == {"resolutions": [[0, 28]]}
    with pytest.raises(ValueError, match="image size of epoch 1: 28 -> 16"):
        check_resume(run, changed, epochs_begun=2)
    other = "torch" if BACKEND != "torch" else "jax"
    run.write_marker(settings=settings, backend=other)  # started on another backend
    with pytest.raises(ValueError, match=rf"trains on the {other} backend; resume it with `--backend {other}`.*"
                                         rf"Received: backend='{BACKEND}'"):
        check_resume(run, settings)
    run.write_marker(backend=BACKEND)
    check_resume(run, settings)


@pytest.mark.slow  # Keras' schedule arithmetic, the same under every backend (JAX dispatches each call: ~150 s): TF suite only
@pytest.mark.parametrize("old, new, begun", [
    (dict(epochs=6, restarts=((4, 0.2),)), dict(epochs=9, restarts=((4, 0.2),)), 4),
    (dict(epochs=6, restarts=((4, 0.2),)), dict(epochs=9, restarts=((4, 0.2),)), 5),
    (dict(epochs=6), dict(epochs=9), 3),
    (dict(epochs=6), dict(epochs=9, restarts=((6, 0.5),)), 5),  # a plain cosine, then a restart where it ended
    (dict(epochs=6, restarts=((3, 0.5),)), dict(epochs=6, restarts=((3, 0.5), (5, 0.1))), 5),
    (dict(epochs=6, restarts=((3, 0.5),)), dict(epochs=6, restarts=((3, 0.5), (4, 0.1))), 5),
    (dict(epochs=6, warmup_epochs=4), dict(epochs=12, restarts=((6, 0.5),)), 3),
    (dict(epochs=9, schedule="constant", warmup_epochs=1), dict(epochs=20, schedule="constant", warmup_epochs=1), 9),
    (dict(epochs=6, min_lr_ratio=1.0, warmup_epochs=2), dict(epochs=7, min_lr_ratio=1.0, warmup_epochs=2), 5),
])
def test_changes_before_finds_a_change_exactly_when_a_begun_steps_rate_differs(old, new, begun):
    # ... at some number of steps per epoch: with one step, a cycle's first step is its peak at any length.
    from zoo.training.fit import make_schedule

    old, new = Recipe(arch="cnn", **old), Recipe(arch="cnn", **new)
    same = []
    for steps in (1, 3, 7):  # steps per epoch
        schedules = [make_schedule(r, steps) for r in (old, new)]
        same.append(all(float(schedules[0](step)) == float(schedules[1](step)) for step in range(begun * steps)))
    assert all(same) == (changes_before(old, new, begun) == []), (same, changes_before(old, new, begun))


def test_epochs_given_with_resolutions_or_restarts_keep_them_and_fine_tuning_has_no_restart():
    from zoo.training.run_setup import apply_flags
    from zoo.training.transfer import finetune_recipe

    recipe = RESNET34_52
    given, _ = apply_flags(recipe, epochs=64, batch_size=None, lr=None, mixed_precision=False,
                           overrides={"restarts": [[40, 0.2]], "resolutions": [[0, 16], [18, 22], [24, 28]]})
    assert given.epochs == 64 and given.restarts == ((40, 0.2),) and given.resolutions == recipe.resolutions
    stretched, _ = apply_flags(recipe, epochs=104, batch_size=None, lr=None, mixed_precision=False)
    assert stretched.restarts == ((80, 0.2),) and stretched.resolutions == ((0, 16), (36, 22), (48, 28))
    assert finetune_recipe("resnet34").restarts == () and finetune_recipe("resnet34", epochs=30).restarts == ()
    constant, _ = apply_flags(recipe, epochs=10, batch_size=None, lr=None, mixed_precision=False,
                              overrides={"schedule": "constant"})  # restarts belong to the cosine
    assert constant.restarts == () and constant.resolutions == ((0, 16), (3, 22), (5, 28))


def test_a_run_that_changes_its_recipe_says_so_in_the_recipe_notes_its_card_shows():
    from zoo.training.report import training_text
    from zoo.training.run_setup import apply_flags

    recipe = RESNET34_52
    assert "then a warm restart at 28" in recipe.notes
    same, _ = apply_flags(recipe, epochs=None, batch_size=None, lr=None, mixed_precision=True,
                          overrides={"restarts": [list(pair) for pair in recipe.restarts]})
    assert same.notes == recipe.notes  # given, but unchanged; precision is not a recipe change
    plain, _ = apply_flags(recipe, epochs=None, batch_size=None, lr=None, mixed_precision=None, overrides={"restarts": []})
    assert plain.notes.startswith(recipe.notes) and "This run changed the recipe's restarts;" in plain.notes
    longer, _ = apply_flags(recipe, epochs=104, batch_size=128, lr=None, mixed_precision=None)
    assert "changed the recipe's lr, epochs, batch_size, resolutions, restarts;" in longer.notes
    own, _ = apply_flags(recipe, epochs=None, batch_size=None, lr=None, mixed_precision=None,
                         overrides={"restarts": [], "notes": "One cosine."})
    assert own.notes == "One cosine."
    metadata = {"recipe": plain.to_dict(), "train_command": "python scripts/train.py resnet34 --set 'restarts=[]'",
                "backend": "tensorflow", "seed": 0, "training": {
                    "best": {"monitor": "val_accuracy", "value": 0.95, "epoch": 50}, "epochs": 52,
                    "examples": {"train": 55000, "val": 5000, "test": 10000}, "distribute": "single device"}}
    card = training_text(metadata)
    assert "then a warm restart at 28. (This run changed the recipe's restarts;" in card and "| restarts | [] |" in card


def test_a_resumed_run_may_change_only_the_schedule_after_the_epochs_it_has_begun(tmp_path):
    recipe = RESNET34_52
    longer = recipe.replace(epochs=64, resolutions=recipe.resolutions, restarts=recipe.restarts, notes="longer")
    assert changes_before(recipe, longer, 40) == []  # the first cycle ends at the restart: its rates stay
    assert changes_before(recipe, longer, 41) == ["learning-rate cycles begun: epochs 41-52 from lr 0.02 -> epochs 41-64 from lr 0.02"]
    assert changes_before(recipe, recipe.replace(epochs=64), 20)  # --epochs alone moves the resolutions and restarts
    later_size = recipe.replace(resolutions=((0, 16), (18, 22), (28, 28)))
    assert changes_before(recipe, later_size, 24) == []
    assert changes_before(recipe, later_size, 25) == ["image size of epoch 25: 28 -> 22"]
    plain = Recipe(arch="cnn", epochs=6)  # no resolutions: every epoch at the input size
    assert changes_before(plain, plain.replace(resolutions=((0, 28),)), 3, input_size=28) == []
    assert changes_before(plain, plain.replace(resolutions=((0, 16), (2, 28))), 3, input_size=28) == [
        "image size of epoch 1: 28 -> 16"]
    assert changes_before(recipe, recipe.replace(lr=0.05), 1)[0] == "lr: 0.1 -> 0.05"  # not a schedule field
    stop = recipe.replace(epochs=40, restarts=(), resolutions=recipe.resolutions)
    assert changes_before(recipe, stop, 40) == []  # stop where the first cycle ends
    assert changes_before(recipe, stop.replace(epochs=39), 40)[-1] == "epochs: 39 is fewer than the 40 epochs begun"
    flat = Recipe(arch="cnn", schedule="constant", warmup_epochs=1, epochs=10)  # the length sets no rate
    assert changes_before(flat, flat.replace(epochs=20), 10) == []
    assert changes_before(flat, flat.replace(epochs=3), 1)  # there the warm-up cap could bind

    run = prepare_run_dir(tmp_path / "run", resume=False, overwrite=False)
    settings = {"name": "resnet34", "recipe": recipe.to_dict(), "model_overrides": {}, "seed": 0, "limit": None}
    run.write_marker(settings=settings, backend=BACKEND)
    lengthened = {**settings, "recipe": longer.to_dict()}
    with pytest.raises(ValueError, match="different settings"):  # without epochs_begun (fine-tuning runs): refused
        check_resume(run, lengthened)
    assert check_resume(run, lengthened, epochs_begun=40) == {  # the notes are not a change of the run
        "epochs_begun": 40, "from": {"epochs": 52}, "to": {"epochs": 64},
    }
    renoted = {**settings, "recipe": recipe.replace(notes="edited in a later zoo").to_dict()}
    assert check_resume(run, renoted) is None and check_resume(run, renoted, epochs_begun=41) is None
    with pytest.raises(ValueError, match=r"would train the 41 epochs it has begun otherwise \(learning-rate cycles"):
        check_resume(run, lengthened, epochs_begun=41)
    with pytest.raises(ValueError, match=r"different settings \(recipe.epochs: 52 -> 64; seed: 0 -> 1\)"):  # a seed: not a schedule
        check_resume(run, {**lengthened, "seed": 1}, epochs_begun=1)


# --- training --------------------------------------------------------------------------------


def test_an_epoch_recorded_but_not_backed_up_counts_as_begun_when_the_schedule_changes(tmp_path):
    # Killed between epoch 4's records (best weights, timing) and its backup: the backup says 3
    # epochs. Shortening the run to 3 epochs would keep epoch 4's best weights and timing, from an
    # epoch the new command does not train: refused.
    recipe = Recipe(arch="cnn", epochs=4, restarts=((3, 1.0),))
    run = prepare_run_dir(tmp_path / "run", resume=False, overwrite=False)
    settings = {"name": "cnn", "recipe": recipe.to_dict(), "model_overrides": {}, "seed": 0, "limit": None}
    run.write_marker(settings=settings, backend=BACKEND)
    run.release()
    run.backup.mkdir()
    (run.backup / "training_metadata.json").write_text(json.dumps({"epoch": 3, "batch": None, "slot": "a"}))
    shortened = {**settings, "recipe": recipe.replace(epochs=3, restarts=()).to_dict()}
    open_kwargs = dict(resume=True, overwrite=False, architecture="cnn", settings=shortened, command="",
                       epochs_done=RunDir.backed_up_epochs, schedule_may_change=True)
    reopened, done = open_run(run.path, **open_kwargs)  # 3 epochs begun: the shorter run trains them the same
    reopened.release()
    assert done == 3 and run.recorded_epochs() == 0
    run.write_marker(settings=settings)
    run.best.mkdir()
    (run.best / "best.json").write_text(json.dumps({"epoch": 3, "value": 0.9, "monitor": "val_accuracy"}))
    assert run.recorded_epochs() == 4
    with pytest.raises(ValueError, match="fewer than the 4 epochs begun"):
        open_run(run.path, **open_kwargs)
    (run.best / "best.json").unlink()
    run.timing.write_text(json.dumps({"epochs": {"0": {}, "1": {}, "2": {}, "3": {}}}))
    with pytest.raises(ValueError, match="fewer than the 4 epochs begun"):
        open_run(run.path, **open_kwargs)


@needs_data
def test_progressive_run_trains_at_each_size_and_records_the_full_size(tmp_path, monkeypatch):
    import zoo.data.pipeline as pipeline

    seen = set()

    def recording_resize(batch, size):
        out = resize_batch(batch, size)
        seen.add(out.shape[1:3])
        return out

    monkeypatch.setattr(pipeline, "resize_batch", recording_resize)
    recipe = get_recipe("resnet18", epochs=3, batch_size=32)
    assert training_phases(recipe) == [(0, 1, 16), (1, 2, 22), (2, 3, 28)]
    run = train(recipe, output_dir=tmp_path / "run", limit=96, verbose=0)
    assert seen == {(16, 16), (22, 22), (28, 28)}  # training batches at every size of the schedule
    folder = read_folder(run)
    assert folder.config["input_shape"] == [28, 28, 1]
    assert folder.metadata["recipe"]["resolutions"] == [[0, 16], [1, 22], [2, 28]]
    timing = folder.metadata["training"]["timing"]
    assert timing["epochs_timed"] == 3 and set(timing["images_per_second_by_size"]) == {"16", "22", "28"}
    assert timing["hours"] >= 0 and timing["images_per_second"] > 0
    card = (run / "README.md").read_text()
    assert "Trained on:" in card and " cores" in card and "images/s" in card
    model = zoo.load(run)
    assert model.inputs[0].shape[1:] == (28, 28, 1)
    assert "--output" not in folder.metadata["train_command"]
    assert f"--backend {BACKEND}" in folder.metadata["train_command"]

    # the finished run stages as a float16 release (under tmp_path) whose card says how it is stored
    from tools import release
    from zoo.registry import _REGISTRY

    monkeypatch.setitem(_REGISTRY, "resnet18", _REGISTRY["resnet18"])  # the record is not kept
    monkeypatch.setattr(release, "ROOT", tmp_path)
    monkeypatch.setattr(release, "RECORDS_DIR", tmp_path / "records")
    (tmp_path / "records").mkdir()
    staged = release.stage_release(run, "resnet18.fmnist", slice_size=None, storage_dtype="float16", allow_below_floor=True)
    assert staged.storage_dtype == "float16"
    staged_card = (tmp_path / "weights" / "resnet18.fmnist" / "README.md").read_text()
    assert "Weights stored as float16 (loaded into float32)" in staged_card
    assert f"measured with {BACKEND}" in staged_card and "Weights stored as" not in card


@pytest.mark.slow  # argv and environment plumbing, the same from every backend: TensorFlow suite only
@needs_data
@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="needs torch for the other backend")
def test_backend_flag_reexecutes_the_script_under_that_backend(tmp_path):
    other = "torch" if BACKEND != "torch" else "tensorflow"
    env = {**os.environ, "KERAS_BACKEND": BACKEND}
    done = subprocess.run(
        [sys.executable, "scripts/train.py", "cnn", "--backend", other, "--epochs", "1", "--limit", "64",
         "--batch-size", "32", "--output", str(tmp_path / "run"), "--verbose", "0"],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    marker = json.loads((tmp_path / "run" / "run.json").read_text())
    assert marker["backend"] == other
    assert read_folder(tmp_path / "run").metadata["train_command"].startswith(f"python scripts/train.py cnn --backend {other}")


@pytest.mark.pipeline
@needs_data
def test_a_run_lengthened_on_resume_ends_at_the_weights_of_the_longer_run_from_scratch(tmp_path):
    # 3 epochs, the first cycle ending at a warm restart at epoch 2: killed after 2 epochs, then
    # resumed as a 5-epoch run whose first 2 epochs train the same (the image sizes of the begun
    # epochs are compared like the rates, above; this model takes one size).
    restart = {"restarts": [[2, 0.5]]}
    straight = train("cnn", epochs=5, batch_size=32, recipe_overrides=restart, output_dir=tmp_path / "straight",
                     limit=96, verbose=0)
    folder = tmp_path / "run"
    with pytest.raises(Crash):
        train("cnn", epochs=3, batch_size=32, recipe_overrides=restart, output_dir=folder, limit=96, verbose=0,
              callbacks=[CrashAfterEpoch(1)])
    with pytest.raises(ValueError, match="learning-rate cycles begun"):  # a plain cosine would change its rates
        train("cnn", epochs=5, batch_size=32, output_dir=folder, limit=96, verbose=0, resume=True)
    train("cnn", epochs=5, batch_size=32, recipe_overrides=restart, output_dir=folder, limit=96, verbose=0, resume=True)

    assert_same_run_weights(straight, folder)
    marker = json.loads((folder / "run.json").read_text())
    assert marker["status"] == "complete" and marker["settings"]["recipe"]["epochs"] == 5
    change, = marker["schedule_changes"]
    assert change["epochs_begun"] == 2 and change["from"]["epochs"] == 3 and change["to"]["epochs"] == 5
    assert "--epochs 3" in change["command_was"] and "--epochs 5" in marker["command"]
    epochs = [int(line.split(",")[0]) for line in (folder / "history.csv").read_text().splitlines()[1:]]
    assert epochs == [0, 1, 2, 3, 4]
    metadata = read_folder(folder).metadata
    assert metadata["train_command"] == read_folder(straight).metadata["train_command"]
    assert metadata["training"]["schedule_changes"] == marker["schedule_changes"]  # kept with the weights
    card = (folder / "README.md").read_text()
    assert "after 2 epochs had begun" in card and "--epochs 3" in card.split("had begun")[1]  # the command before
    assert "schedule_changes" not in read_folder(straight).metadata["training"]


@pytest.mark.pipeline
@needs_data
def test_progressive_run_resumes_in_the_phase_it_stopped_in(tmp_path, monkeypatch):
    import zoo.data.pipeline as pipeline

    recipe = get_recipe("resnet18", epochs=4, batch_size=32, resolutions=((0, 16), (2, 22), (3, 28)))
    assert training_phases(recipe) == [(0, 2, 16), (2, 3, 22), (3, 4, 28)]
    folder = tmp_path / "run"
    with pytest.raises(Crash):
        train(recipe, output_dir=folder, limit=96, verbose=0, callbacks=[CrashAfterEpoch(1)])  # the end of the first (16-px) phase
    seen = []

    def recording_resize(batch, size):
        seen.append(size)
        return resize_batch(batch, size)

    monkeypatch.setattr(pipeline, "resize_batch", recording_resize)
    train(recipe, output_dir=folder, limit=96, verbose=0, resume=True)
    assert 16 not in seen and {22, 28} <= set(seen)  # the 16-px phase was done: not repeated
    epochs = [int(line.split(",")[0]) for line in (folder / "history.csv").read_text().splitlines()[1:]]
    assert epochs == [0, 1, 2, 3]
    assert json.loads((folder / "run.json").read_text())["status"] == "complete"
