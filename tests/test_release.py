"""Release staging: weights/<arch>.<tag>/ + record, loading it by name, hash checks."""

import concurrent.futures
import json
import os
import shutil
from pathlib import Path

import keras
import numpy as np
import pytest
from conftest import predict, sample_batch
from conftest_hub import hub_env, local_hub  # noqa: F401

import zoo
from tools import release
from zoo import api, atomic
from zoo.format import IntegrityError, read_folder, sha256_of
from zoo.format import save_folder as export_folder
from zoo.registry import WeightSpec, _REGISTRY, read_release, register_model

RELEASED_CNN = Path(__file__).resolve().parents[1] / "weights" / "cnn.fmnist"


@pytest.fixture
def sandbox(tmp_path, monkeypatch):
    """Releases written under tmp_path instead of the checkout."""
    zoo.list_models()  # registers the built-in architectures (the tests below patch _REGISTRY)
    monkeypatch.setattr(release, "ROOT", tmp_path)
    monkeypatch.setattr(release, "RECORDS_DIR", tmp_path / "records")
    monkeypatch.setattr(api, "_repo_root", lambda: tmp_path)
    (tmp_path / "records").mkdir()
    return tmp_path


def _fake_run(folder, model):
    export_folder(model, folder, metadata={"train_command": "python scripts/train.py cnn", "seed": 3})
    (folder / "metrics.json").write_text(json.dumps({"accuracy": 0.95}))  # above the floor
    (folder / "last.safetensors").write_bytes(b"not released")
    return folder


def test_stage_release_records_hashes_and_loads_by_name(sandbox, monkeypatch):
    monkeypatch.setitem(_REGISTRY, "cnn", _REGISTRY["cnn"])  # restore the real release afterwards
    model = zoo.create("cnn")
    run = _fake_run(sandbox / "run", model)
    staged = release.stage_release(run, "cnn.fmnist", slice_size=None)
    assert staged.local_dir == "weights/cnn.fmnist"
    assert {f.name for f in staged.files} == {"config.json", "metadata.json", "model.safetensors"}
    assert staged.metrics == {"accuracy": 0.95} and staged.seed == 3
    record = json.loads((sandbox / "records" / "cnn.fmnist.json").read_text())
    assert record["files"][2]["sha256"] == sha256_of(sandbox / "weights/cnn.fmnist/model.safetensors")

    spec = _REGISTRY["cnn"].weights["fmnist"]
    monkeypatch.setitem(_REGISTRY, "relcnn", _REGISTRY["cnn"])
    register_model(_REGISTRY["cnn"].builder, name="relcnn", weights=[WeightSpec(**{**vars(spec), "release": staged})],
                   head=("predictions",), overwrite=True)
    x = sample_batch(model)
    np.testing.assert_array_equal(predict(zoo.load("relcnn"), x), predict(model, x))

    with pytest.raises(FileExistsError, match="overwrite=True"):
        release.stage_release(run, "cnn.fmnist", slice_size=None)
    moved = sandbox / "moved"  # the folder moved out of the tree: its committed record is still a release
    (sandbox / "weights/cnn.fmnist").rename(moved)
    with pytest.raises(FileExistsError, match=r"cnn\.fmnist\.json' exists; pass overwrite=True"):
        release.stage_release(run, "cnn.fmnist", slice_size=None)
    assert json.loads((sandbox / "records" / "cnn.fmnist.json").read_text()) == record
    moved.rename(sandbox / "weights/cnn.fmnist")
    weights_file = sandbox / "weights/cnn.fmnist/model.safetensors"
    data = bytearray(weights_file.read_bytes())
    data[-1] ^= 0xFF
    weights_file.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match="Integrity check failed for 'model.safetensors'"):
        zoo.load("relcnn")


def test_release_notes_go_into_the_record_and_the_card(sandbox, monkeypatch):
    monkeypatch.setitem(_REGISTRY, "cnn", _REGISTRY["cnn"])  # restore the real release afterwards
    run = _fake_run(sandbox / "run", zoo.create("cnn"))
    (run / "README.md").write_text("# cnn.fmnist\n\n## Training\n\nTraining took 2.0 hours.\n")
    plain = release.stage_release(run, "cnn.fmnist", slice_size=None)
    card = sandbox / "weights/cnn.fmnist/README.md"
    assert card.read_text() == (run / "README.md").read_text() and plain.notes == ""
    notes = "Epochs 3-4 shared the CPU with test runs; quiet epochs ran at 98 images/s."
    staged = release.stage_release(run, "cnn.fmnist", slice_size=None, notes=notes, overwrite=True)
    assert card.read_text() == (run / "README.md").read_text() + f"\n## Release notes\n\n{notes}\n"
    assert staged.notes == notes
    assert json.loads((sandbox / "records" / "cnn.fmnist.json").read_text())["notes"] == notes
    assert {f.name: f.sha256 for f in staged.files}["README.md"] == sha256_of(card)  # hashed as shown


def test_register_publication_pins_repo_and_revision(sandbox, monkeypatch):
    monkeypatch.setitem(_REGISTRY, "cnn", _REGISTRY["cnn"])  # restore the real release afterwards
    run = _fake_run(sandbox / "run", zoo.create("cnn"))
    release.stage_release(run, "cnn.fmnist", slice_size=None)
    pinned = release.register_publication("cnn.fmnist", "keras-zoo/cnn.fmnist", "a" * 40)
    assert (pinned.hub_repo_id, pinned.hub_revision) == ("keras-zoo/cnn.fmnist", "a" * 40)
    assert json.loads((sandbox / "records" / "cnn.fmnist.json").read_text())["hub_revision"] == "a" * 40


def test_release_refuses_a_run_of_another_architecture(sandbox):
    run = _fake_run(sandbox / "run", zoo.create("cnn"))
    with pytest.raises(ValueError, match="trained 'cnn', not 'resnet34'"):
        release.stage_release(run, "resnet34.fmnist", slice_size=None)


def test_release_refuses_an_unfinished_run(sandbox, monkeypatch):
    monkeypatch.setitem(_REGISTRY, "cnn", _REGISTRY["cnn"])
    run = _fake_run(sandbox / "run", zoo.create("cnn"))
    (run / "run.json").write_text(json.dumps({"status": "training", "architecture": "cnn"}))
    with pytest.raises(ValueError, match=r"has not finished \(run.json status 'training'\).*--resume.*Received: run_dir="):
        release.stage_release(run, "cnn.fmnist", slice_size=None)
    (run / "run.json").write_text(json.dumps({"status": "complete", "architecture": "cnn"}))
    (run / "metrics.json").unlink()  # a completion cut before its test figures were written
    with pytest.raises(ValueError, match=r"has no metrics.json .*Received: run_dir="):
        release.stage_release(run, "cnn.fmnist", slice_size=None)
    assert not (sandbox / "weights").exists() and not list((sandbox / "records").iterdir())
    (run / "metrics.json").write_text(json.dumps({"accuracy": 0.95}))
    assert release.stage_release(run, "cnn.fmnist", slice_size=None).metrics == {"accuracy": 0.95}


def test_release_refuses_weights_below_the_tag_floor_and_keeps_the_previous_release(sandbox, monkeypatch):
    monkeypatch.setitem(_REGISTRY, "cnn", _REGISTRY["cnn"])  # restore the real release afterwards
    run = _fake_run(sandbox / "run", zoo.create("cnn"))
    previous = release.stage_release(run, "cnn.fmnist", slice_size=None)
    folder = sandbox / "weights/cnn.fmnist"
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    (run / "metrics.json").write_text(json.dumps({"accuracy": 0.929}))  # cnn.fmnist's floor: 0.93
    with pytest.raises(ValueError, match=r"cnn.fmnist is not released below its floor \{'accuracy': 0.93\}: "
                       r"the run scores accuracy=0.929"):
        release.stage_release(run, "cnn.fmnist", slice_size=None, overwrite=True)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    assert not list((sandbox / "weights").glob(".*staging*"))
    assert json.loads((sandbox / "records" / "cnn.fmnist.json").read_text())["metrics"] == previous.metrics
    trial = release.stage_release(run, "cnn.fmnist", slice_size=None, overwrite=True, allow_below_floor=True)
    assert trial.metrics == {"accuracy": 0.929}  # a trial staging (scripts/release.py --below-floor)
    (run / "metrics.json").write_text(json.dumps({"loss": 0.1}))
    with pytest.raises(ValueError, match=r"the run has no \['accuracy'\] figure"):
        release.stage_release(run, "cnn.fmnist", slice_size=None, overwrite=True)


def test_release_refuses_a_run_trained_or_measured_with_limit(sandbox, monkeypatch):
    """A --limit run's metrics.json is about test[:limit]: its floor check and the card's "10,000
    images" would be false, so it is refused (a trial staging with --below-floor still works)."""
    monkeypatch.setitem(_REGISTRY, "cnn", _REGISTRY["cnn"])  # restore the real release afterwards
    model = zoo.create("cnn")
    for key in ("evaluation", "training"):
        run = sandbox / f"run-{key}"
        export_folder(model, run, metadata={"train_command": "python scripts/train.py cnn --limit 256", "seed": 3,
                                            key: {"limit": 256}})
        (run / "metrics.json").write_text(json.dumps({"accuracy": 0.95}))
        with pytest.raises(ValueError, match=rf"used --limit.*Received: {key}.limit=256 \(256 of"):
            release.stage_release(run, "cnn.fmnist", slice_size=None, overwrite=True)
        assert not (sandbox / "records" / "cnn.fmnist.json").exists()
    assert release.stage_release(run, "cnn.fmnist", slice_size=None, allow_below_floor=True)
    whole = sandbox / "run-whole"  # a --limit beyond both splits used every image: a full run
    export_folder(model, whole, metadata={"train_command": "python scripts/train.py cnn --limit 100000", "seed": 3,
                                          "evaluation": {"limit": 100000, "examples": 10000}, "training": {"limit": 100000}})
    (whole / "metrics.json").write_text(json.dumps({"accuracy": 0.95}))
    assert release.stage_release(whole, "cnn.fmnist", slice_size=None, overwrite=True).metrics == {"accuracy": 0.95}


def test_unreleased_tag_says_so(unreleased):
    unreleased("resnet34.fmnist")
    with pytest.raises(ValueError, match="No released weights for 'resnet34.fmnist' yet"):
        zoo.load("resnet34")
    assert zoo.load("resnet34", weights=None).output_shape == (None, 10)


def test_publish_pushes_the_release_and_pins_the_commit(sandbox, local_hub, monkeypatch):
    monkeypatch.setitem(_REGISTRY, "cnn", _REGISTRY["cnn"])  # restore the real release afterwards
    monkeypatch.setenv("HF_ENDPOINT", local_hub.endpoint)
    model = zoo.create("cnn")
    staged = release.stage_release(_fake_run(sandbox / "run", model), "cnn.fmnist", slice_size=None)
    # The repo holds an earlier release: its own card and shards the new release does not have.
    from huggingface_hub import HfApi

    api = HfApi(endpoint=local_hub.endpoint)
    zoo.push(model, "keras-zoo/cnn.fmnist", max_shard_size=1_000_000)
    api.upload_file(path_or_fileobj=b"---\nlibrary_name: keras\n---\n# OLD RELEASE\n", path_in_repo="README.md",
                    repo_id="keras-zoo/cnn.fmnist")
    held = atomic.lock_exclusively(sandbox / "weights")  # a staging under way: publish waits for it
    publishing = concurrent.futures.ThreadPoolExecutor(1).submit(
        release.publish, sandbox / staged.local_dir, "hf://keras-zoo/cnn.fmnist", register="cnn.fmnist")  # the handle
    with pytest.raises(concurrent.futures.TimeoutError):
        publishing.result(timeout=1)
    assert json.loads((sandbox / "records" / "cnn.fmnist.json").read_text()).get("hub_revision") is None
    os.close(held)
    sha = publishing.result()
    record = json.loads((sandbox / "records" / "cnn.fmnist.json").read_text())
    assert (record["hub_repo_id"], record["hub_revision"]) == ("keras-zoo/cnn.fmnist", sha)
    pinned = set(api.list_repo_files("keras-zoo/cnn.fmnist", revision=sha))
    assert "model.safetensors.index.json" not in pinned and not any(name.startswith("model-") for name in pinned)
    assert b"OLD RELEASE" not in local_hub.file_bytes("keras-zoo/cnn.fmnist", "README.md", sha)
    catalog = json.loads((sandbox / "registry.json").read_text())
    assert catalog["models"]["cnn"]["weights"]["fmnist"]["release"]["hub_revision"] == sha
    pulled = zoo.pull("keras-zoo/cnn.fmnist", revision=sha, records=release.Release.from_dict(record).files)
    assert (pulled / "model.safetensors").read_bytes() == (sandbox / staged.local_dir / "model.safetensors").read_bytes()
    with pytest.raises(ValueError, match="No release record for 'resnet34.fmnist'"):
        release.publish(sandbox / staged.local_dir, "keras-zoo/x", register="resnet34.fmnist")
    # Pinning a folder whose files are not the recorded ones (or an unmerged pull request) is refused before any push.
    other = sandbox / "other"
    shutil.copytree(sandbox / staged.local_dir, other)
    (other / "model.safetensors").write_bytes(b"other weights")
    with pytest.raises(IntegrityError, match="model.safetensors"):
        release.publish(other, "keras-zoo/cnn.fmnist", register="cnn.fmnist")
    with pytest.raises(ValueError, match="Received: register='cnn.fmnist', create_pr=True"):
        release.publish(sandbox / staged.local_dir, "keras-zoo/cnn.fmnist", register="cnn.fmnist", create_pr=True)
    assert json.loads((sandbox / "records" / "cnn.fmnist.json").read_text())["hub_revision"] == sha


@pytest.mark.slow
@pytest.mark.skipif(not RELEASED_CNN.exists(), reason="cnn.fmnist is not staged in this checkout")
def test_stage_release_converts_to_float16_shards_and_checks_the_drift(sandbox, monkeypatch):
    """A release converted to float16 shards: measured again on the whole test split."""
    from zoo.evaluation import evaluate_name

    monkeypatch.setitem(_REGISTRY, "cnn", _REGISTRY["cnn"])  # restore the real release afterwards
    trained = zoo.load(str(RELEASED_CNN))
    run = sandbox / "run"
    # trained on another backend than the one that converts it (the TensorFlow suite runs this test)
    timing = {"epochs_timed": 2, "epochs": 2, "hours": 0.3, "images_per_second": 100.0, "images_per_second_by_size": {"28": 100.0}}
    export_folder(trained, run, metadata={"train_command": "python scripts/train.py cnn", "seed": 0, "backend": "torch",
                                          "training": {"epochs": 2, "timing": timing}})
    epoch = {"images": 1000, "image_size": 28}
    (run / "timing.json").write_text(json.dumps({"epochs": {"0": {**epoch, "seconds": 10.0}}}))  # epoch 2 left out after the run
    (run / "timing.excluded.json").write_text(json.dumps({"epochs": {"1": {**epoch, "seconds": 1070.0, "reason": "paused"}}}))
    float32 = evaluate_name(run)
    # as the training backend measured it: 0.3 points away, more than the tolerance, which compares
    # the run's weights with the staged ones on one backend
    (run / "metrics.json").write_text(json.dumps({"accuracy": float32["accuracy"] - 0.003}))

    staged = release.stage_release(run, "cnn.fmnist", slice_size=None, storage_dtype="float16", max_shard_size=2_000_000)
    folder = sandbox / "weights/cnn.fmnist"
    shards = sorted(p.name for p in folder.glob("model-*.safetensors"))
    assert len(shards) >= 2 and (folder / "model.safetensors.index.json").exists()
    assert not (folder / "model.safetensors").exists()
    # whole tensors per shard (the largest, fc1's kernel, is 1.6 MB in float16) + a JSON header
    assert all((folder / name).stat().st_size <= 2_000_000 + 16_384 for name in shards)
    assert staged.storage_dtype == "float16"
    assert staged.backend == "torch" and read_folder(folder).metadata["backend"] == "torch"  # the run's, not ours
    assert {f.name for f in staged.files} == {"config.json", "metadata.json", "model.safetensors.index.json", *shards}
    assert abs(staged.metrics["accuracy"] - float32["accuracy"]) <= release.STORAGE_TOLERANCE
    config = read_folder(folder).metadata
    assert config["weights"]["storage_dtype"] == "float16"
    assert config["metrics"] == staged.metrics
    assert config["metrics_before_conversion"] == {"storage_dtype": "float32", "measured_with": keras.backend.backend(), **float32}
    assert config["training"]["epochs"] == 2  # the rest of the run's training record kept
    assert config["training"]["timing"]["epochs_excluded"] == {"2": "paused"}  # summarized again from the run folder
    assert config["training"]["timing"]["images_per_second"] == 100.0 and config["training"]["timing"]["epochs_timed"] == 1
    reloaded = zoo.load(str(folder))
    assert reloaded.get_layer("conv1").kernel.dtype == "float32"  # stored float16, computed in float32
    x = sample_batch(trained)
    np.testing.assert_allclose(predict(reloaded, x), predict(trained, x), atol=5e-3)


@pytest.mark.slow
@pytest.mark.skipif(not RELEASED_CNN.exists(), reason="cnn.fmnist is not staged in this checkout")
def test_stage_release_refuses_a_conversion_that_moves_the_metrics(sandbox, monkeypatch):
    monkeypatch.setitem(_REGISTRY, "cnn", _REGISTRY["cnn"])
    run = sandbox / "run"
    model = zoo.load(str(RELEASED_CNN))
    export_folder(model, run, metadata={"train_command": "python scripts/train.py cnn", "seed": 0})
    (run / "metrics.json").write_text(json.dumps({"accuracy": read_release("cnn.fmnist").metrics["accuracy"]}))
    previous = release.stage_release(run, "cnn.fmnist", slice_size=None)  # an existing release
    folder = sandbox / "weights/cnn.fmnist"
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    # the head scaled by 1e-7: nearly the same predictions in float32 (a positive scale of the
    # logits), mostly below float16's smallest subnormal (6e-8), so rounded away (~0.74 accuracy)
    head = model.get_layer("predictions")
    for weight in head.weights:
        weight.assign(keras.ops.convert_to_numpy(weight) * 1e-7)
    export_folder(model, run, metadata={"train_command": "python scripts/train.py cnn", "seed": 0}, overwrite=True)
    with pytest.raises(ValueError, match=r"moved test metrics by more than 0.0005: \{'accuracy'"):
        release.stage_release(run, "cnn.fmnist", slice_size=None, storage_dtype="float16", overwrite=True)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before  # left as it was
    assert not list((sandbox / "weights").glob(".*staging"))
    record = json.loads((sandbox / "records" / "cnn.fmnist.json").read_text())
    assert record["storage_dtype"] == "float32" and record["metrics"] == previous.metrics
