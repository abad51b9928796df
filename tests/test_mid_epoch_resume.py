"""Backups in the middle of an epoch (issue 11: a ResNet-34 epoch takes up to 50 minutes on a
2-core AVX2 CPU, and a session's end kills the run): a run killed inside an epoch continues at
the batch where it stopped and ends at the weights of an uninterrupted run."""

from __future__ import annotations

import json
import subprocess
import sys

import keras
import numpy as np
import pytest
from conftest import ROOT, Crash, assert_same_run_weights

from zoo.data import ArrayDataset
from zoo.data.pipeline import EpochRemainder
from zoo.data.fashion_mnist import find_data_dir
from zoo.format import read_folder
from zoo.training import train
from zoo.training.callbacks import ResumableBackup, ResumedEpochLogs, carried_figures
from zoo.training.fit import _carried_logs, backup_interval_s
from zoo.training.recipes import get_recipe
from zoo.training.run_dir import prepare_run_dir
from zoo.training.run_setup import check_backup_minutes

needs_data = pytest.mark.skipif(find_data_dir() is None, reason="needs Fashion-MNIST ($FASHION_MNIST_DIR or dataset-fashion-mnist)")
RUN = dict(epochs=3, batch_size=32, limit=320, seed=0, verbose=0)


class CrashAt(keras.callbacks.Callback):
    """Raises at the end of one batch of one epoch (after the backup callback has run)."""

    def __init__(self, epoch: int, batch: int):
        super().__init__()
        self.epoch, self.batch, self._current = epoch, batch, -1

    def on_epoch_begin(self, epoch, logs=None):
        self._current = epoch

    def on_train_batch_end(self, batch, logs=None):
        if (self._current, batch) == (self.epoch, self.batch):
            raise Crash()


class CountBatches(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.batches = 0

    def on_train_batch_end(self, batch, logs=None):
        self.batches += 1


def _backup_record(run) -> dict:
    return json.loads((run / "backup" / "training_metadata.json").read_text())


def test_the_rest_of_an_epoch_is_its_batches_from_a_batch_on_and_keras_epoch_ends_do_not_move_it():
    x = np.arange(10).reshape(10, 1).astype("float32")
    ds = ArrayDataset(x, np.arange(10), batch_size=3, seed=4, drop_remainder=True, augmenter=lambda b, rng: b + rng.random(b.shape))
    ds.set_epoch(2)
    whole = [ds[i] for i in range(len(ds))]
    ds.set_epoch(0)
    rest = EpochRemainder(ds, epoch=2, first=1)
    assert len(rest) == 2
    for i in range(2):  # same examples, same augmentation
        np.testing.assert_array_equal(rest[i][0], whole[i + 1][0])
        np.testing.assert_array_equal(rest[i][1], whole[i + 1][1])
    rest.on_epoch_end()
    assert len(rest) == 2 and ds.epoch == 0
    np.testing.assert_array_equal(rest[0][1], whole[1][1])
    with pytest.raises(IndexError):
        rest[2]
    for bad in (3, -1, 1.5, True):
        with pytest.raises(ValueError, match=rf"`first` must be an int in \[0, 3\).*Received: first={bad!r}"):
            EpochRemainder(ds, epoch=0, first=bad)
    with pytest.raises(ValueError, match="Received: epoch=-1"):
        EpochRemainder(ds, epoch=-1, first=0)


@pytest.mark.parametrize("bad", [-1, "10", True, float("nan")])
def test_a_bad_backup_interval_is_refused(bad):
    with pytest.raises(ValueError, match=r"`backup_minutes` must be None .* Received: backup_minutes="):
        check_backup_minutes(bad)
    with pytest.raises(ValueError, match=r"`interval_s` must be None or a number of seconds >= 0"):
        ResumableBackup("unused", interval_s=bad)


def test_backups_inside_epochs_only_when_the_best_epoch_is_picked_by_a_validation_figure():
    assert backup_interval_s(get_recipe("cnn"), 2) == 120.0
    assert backup_interval_s(get_recipe("cnn"), None) is None
    # A resumed epoch's training figures are merged from two parts (equal up to rounding): they must not pick the best epoch.
    assert backup_interval_s(get_recipe("cnn", monitor="loss"), 2) is None


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    if find_data_dir() is None:
        pytest.skip("needs Fashion-MNIST ($FASHION_MNIST_DIR or dataset-fashion-mnist)")
    full = tmp_path_factory.mktemp("mid-epoch") / "full"
    train("cnn", output_dir=full, backup_minutes=None, **RUN)
    return full


# Every suite: the batch order after a resume (FIT_EPOCH_SHIFT) and torch's generator (cnn has
# dropout) depend on each backend's trainer.
@needs_data
def test_a_run_killed_inside_an_epoch_resumes_at_that_batch_and_ends_at_the_uninterrupted_weights(uninterrupted, tmp_path):
    killed = tmp_path / "killed"
    steps = read_folder(uninterrupted).metadata["training"]["optimizer_steps"] // RUN["epochs"]
    assert steps >= 6

    with pytest.raises(Crash):  # killed after batch 4 of the second epoch (0-based: epoch 1, batch 3)
        train("cnn", output_dir=killed, backup_minutes=0, callbacks=[CrashAt(epoch=1, batch=3)], **RUN)
    record = _backup_record(killed)
    assert (record["epoch"], record["batch"]) == (1, 4) and record["seconds"] > 0
    assert set(record["logs"]) == {"loss", "accuracy"}  # the epoch's figures over its first 4 batches
    with pytest.raises(Crash):  # resumed, and killed again in the same epoch, after its batch 5
        train("cnn", output_dir=killed, backup_minutes=0, resume=True, callbacks=[CrashAt(epoch=1, batch=0)], **RUN)
    assert (_backup_record(killed)["epoch"], _backup_record(killed)["batch"]) == (1, 5)

    counter = CountBatches()
    train("cnn", output_dir=killed, backup_minutes=0, resume=True, callbacks=[counter], **RUN)
    assert counter.batches == (steps - 5) + steps  # the rest of epoch 1, then epoch 2: nothing trained twice
    training = read_folder(killed).metadata["training"]
    assert (training["resumed_from_epoch"], training["resumed_from_batch"]) == (1, 5)
    assert_same_run_weights(uninterrupted, killed)
    # history.csv as the uninterrupted run's: epoch 1's training figures cover its batches before both kills too.
    expected, actual = (np.genfromtxt(run / "history.csv", delimiter=",", names=True) for run in (uninterrupted, killed))
    assert actual.dtype.names == expected.dtype.names and "accuracy" in expected.dtype.names
    for column in expected.dtype.names:
        np.testing.assert_allclose(actual[column], expected[column], rtol=1e-5, atol=1e-7, err_msg=column)
    timing = json.loads((killed / "timing.json").read_text())["epochs"]
    assert {timing[e]["images"] for e in "012"} == {steps * RUN["batch_size"]}  # epoch 1 whole: before and after the kill
    assert timing["1"]["seconds"] >= record["seconds"]


@pytest.mark.parametrize("metric, carried", [("accuracy", True), ("auc", False)])
def test_a_backup_inside_an_epoch_carries_the_figures_so_far_when_they_are_means(metric, carried, tmp_path):
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1, activation="sigmoid")])
    model.compile("sgd", "binary_crossentropy", metrics=[keras.metrics.AUC(name="auc") if metric == "auc" else "accuracy"])
    rng = np.random.default_rng(0)
    x, y = rng.random((64, 3)).astype("float32"), rng.integers(0, 2, (64, 1)).astype("float32")
    backup = ResumableBackup(tmp_path / "backup", interval_s=0)
    with pytest.raises(Crash):
        model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0, callbacks=[backup, CrashAt(epoch=0, batch=2)])
    record = _backup_record(tmp_path)
    assert (record["epoch"], record["batch"]) == (0, 3)
    # An AUC of two parts of an epoch is not their weighted mean: such figures are not carried.
    assert (set(record.get("logs", {})) == {"loss", metric}) is carried


def test_the_figures_of_an_epoch_killed_twice_are_those_of_the_uninterrupted_epoch(tmp_path):
    # lr 0: every batch's figures are the same whichever fit computes them, so the merged epoch
    # means must equal one uninterrupted fit's.
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1, activation="sigmoid")])
    model.compile(keras.optimizers.SGD(0.0), "binary_crossentropy", metrics=["accuracy"])
    rng = np.random.default_rng(0)
    x, y = rng.random((80, 3)).astype("float32"), rng.integers(0, 2, (80, 1)).astype("float32")
    fit = dict(batch_size=8, epochs=1, shuffle=False, verbose=0)
    whole = model.fit(x, y, **fit).history

    def part(first: int, crash_at: int | None) -> dict:
        """Train batches ``first``.. of the epoch, resuming from the backup when ``first`` > 0."""
        backup = ResumableBackup(tmp_path / "backup", interval_s=0)
        if first:
            record = _backup_record(tmp_path)
            assert record["batch"] == first
            backup.batch_offset, backup.carried_logs = first, record["logs"]
        callbacks = [ResumedEpochLogs(backup), backup] + ([CrashAt(epoch=0, batch=crash_at)] if crash_at is not None else [])
        history = keras.callbacks.History()
        try:
            model.fit(x[first * 8:], y[first * 8:], callbacks=[*callbacks, history], **fit)
        except Crash:
            pass
        return history.history

    part(0, crash_at=2)  # killed after 3 of 10 batches
    part(3, crash_at=3)  # again after 4 more: the backup carries the means of the first 7
    assert _backup_record(tmp_path)["batch"] == 7
    resumed = part(7, crash_at=None)
    for key in ("loss", "accuracy"):
        np.testing.assert_allclose(resumed[key], whole[key], rtol=1e-6, err_msg=key)


def test_figures_a_backup_did_not_keep_are_not_passed_off_as_the_whole_epochs():
    backup = ResumableBackup("unused", interval_s=0)
    backup.batch_offset, backup.carried_logs = 3, {"loss": 1.0}
    assert backup.epoch_logs({"loss": 2.0, "accuracy": 0.5, "val_loss": 5.0}, batches=1) == {"loss": 1.25}
    backup.carried_logs = {}
    assert backup.epoch_logs({"loss": 2.0}, batches=1) == {}  # so a later backup records none


@pytest.mark.parametrize("logs", [["loss", 0.5], {"loss": "0.5"}, {"loss": None}, {"loss": True}, {1: 0.5}])
def test_a_damaged_backup_figure_record_is_refused_with_what_was_received(logs):
    with pytest.raises(ValueError, match=r"map figure names to numbers.*Received: logs="):
        carried_figures(logs)
    assert carried_figures({"loss": np.float32(0.5), "accuracy": 1}) == {"loss": 0.5, "accuracy": 1.0}


@pytest.mark.parametrize("record, note", [
    ({"epoch": 2, "batch": 40}, "keeps no training figures of epoch 3's first 40 batches"),
    ({"epoch": 2, "batch": 40, "logs": {"loss": "nan?"}}, "ignored the training figures of"),
])
def test_a_resume_says_when_the_continued_epochs_row_covers_only_the_batches_after_the_kill(record, note, tmp_path, capsys):
    run = prepare_run_dir(tmp_path / "run", resume=False, overwrite=False)
    try:
        assert _carried_logs(record, run, epoch=3, batches=40) == {}
    finally:
        run.release()
    out = capsys.readouterr().out
    assert note in out and "covers the batches trained from now on" in out


def test_without_an_interval_nothing_is_saved_inside_an_epoch(tmp_path):
    backup = ResumableBackup(tmp_path / "backup", interval_s=None)
    backup.set_params({"steps": 10, "epochs": 1})
    backup.on_epoch_begin(0)
    backup.on_train_batch_end(3)
    assert not (tmp_path / "backup").exists()


class CrashAtTrainEnd(keras.callbacks.Callback):
    def on_train_end(self, logs=None):
        raise Crash()


@pytest.mark.pipeline
@needs_data
def test_a_run_killed_after_its_last_backup_but_before_its_results_ends_at_the_uninterrupted_weights(uninterrupted, tmp_path):
    run = tmp_path / "run"
    with pytest.raises(Crash):  # every epoch trained and backed up; no results yet
        train("cnn", output_dir=run, callbacks=[CrashAtTrainEnd()], **RUN)
    assert _backup_record(run)["epoch"] == RUN["epochs"] and not (run / "metrics.json").exists()
    counter = CountBatches()
    train("cnn", output_dir=run, resume=True, callbacks=[counter], **RUN)
    assert counter.batches == 0
    assert_same_run_weights(uninterrupted, run)  # last.safetensors and the optimizer steps included
    # No `fit` ran (so no callback's on_train_begin): the results still name the best epoch and its value.
    expected, actual = (read_folder(folder).metadata["training"] for folder in (uninterrupted, run))
    assert actual["best"]["value"] is not None and actual["best"]["epoch"] in range(1, RUN["epochs"] + 1)
    assert actual["best"] == expected["best"] and actual["resumed_from_epoch"] == RUN["epochs"]


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="argument parsing: TensorFlow suite only")
def test_the_command_line_refuses_a_negative_interval_and_backup_minutes_with_data(tmp_path):
    for extra, message in (
        (["--backup-minutes", "-1"], "Received: backup_minutes=-1"),
        (["--data", str(tmp_path), "--backup-minutes", "5"], "--backup-minutes is for Fashion-MNIST runs"),
    ):
        done = subprocess.run(
            [sys.executable, "scripts/train.py", "cnn", "--output", str(tmp_path / "run"), *extra],
            cwd=ROOT, capture_output=True, text=True, timeout=300,
        )
        assert done.returncode == 2 and message in done.stderr, done.stderr[-2000:]
        assert not (tmp_path / "run").exists()
