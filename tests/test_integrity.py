"""Storage integrity (issue 14): saves never leave a stale index behind, and every bad input
(corrupt, truncated or empty weights, missing or extra shards, hostile indexes, configs and
metadata, weights that do not fit) is refused with a clear error, leaving the model untouched."""

from __future__ import annotations

import json
import sys
import zipfile
from pathlib import Path

import keras
import numpy as np
import pytest
from conftest import predict, sample_batch
from safetensors.numpy import save_file

import zoo
from zoo.format import IntegrityError, UnsafeConfigError, read_folder, save_folder, sha256_of
from zoo.weights import INDEX_NAME, WEIGHTS_NAME, WeightsFileError, WeightsMismatchError, read_weights

SHARD = 200_000  # bytes: the cnn (~3.3 MB of float32) splits into many shards


def values(model: keras.Model) -> list[np.ndarray]:
    return [keras.ops.convert_to_numpy(w).copy() for w in model.weights]


def same(a: list[np.ndarray], b: list[np.ndarray]) -> bool:
    return len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b))


def seeded_cnn(seed: int) -> keras.Model:
    keras.utils.set_random_seed(seed)
    return zoo.create("cnn")


# --- 1. a second save into the same place replaces the first one completely ------------------


@pytest.mark.parametrize(
    "first, second",
    [(SHARD, 2**31), (SHARD, 4 * SHARD), (2**31, SHARD)],
    ids=["sharded-then-single", "many-then-fewer-shards", "single-then-sharded"],
)
@pytest.mark.parametrize("where", ["folder", "file"])
def test_overwrite_leaves_nothing_of_the_previous_save(tmp_path, first, second, where):
    old, new = seeded_cnn(1), seeded_cnn(2)
    target = tmp_path if where == "folder" else tmp_path / WEIGHTS_NAME
    zoo.save_weights(old, target, max_shard_size=first)
    written = zoo.save_weights(new, target, max_shard_size=second, overwrite=True)
    # Only the new save's files remain (no stale index, no stale shards, no temporaries).
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in written)
    loaded = zoo.create("cnn")
    zoo.load_weights(loaded, target)
    assert same(values(loaded), values(new))
    x = sample_batch(new)
    np.testing.assert_array_equal(predict(loaded, x), predict(new, x))


def test_a_save_over_an_earlier_save_of_another_layout_needs_overwrite(tmp_path):
    old = seeded_cnn(1)
    zoo.save_weights(old, tmp_path, max_shard_size=SHARD)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    with pytest.raises(FileExistsError, match="overwrite=True") as error:
        zoo.save_weights(seeded_cnn(2), tmp_path)  # unsharded: none of its names exist yet
    assert INDEX_NAME in str(error.value)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
    loaded = zoo.create("cnn")
    zoo.load_weights(loaded, tmp_path)
    assert same(values(loaded), values(old))


def test_save_folder_overwrite_replaces_sharded_weights_and_records(tmp_path):
    save_folder(seeded_cnn(1), tmp_path / "m", max_shard_size=SHARD)
    new = seeded_cnn(2)
    save_folder(new, tmp_path / "m", overwrite=True)
    folder = read_folder(tmp_path / "m")
    assert [r.name for r in folder.records] == [WEIGHTS_NAME]
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["config.json", "metadata.json", WEIGHTS_NAME]
    assert same(values(zoo.load(tmp_path / "m")), values(new))


# --- 3. bad weights files: clear errors, the model keeps its weights -------------------------


def _single(folder: Path) -> Path:
    zoo.save_weights(seeded_cnn(1), folder / WEIGHTS_NAME)
    return folder / WEIGHTS_NAME


def _sharded(folder: Path) -> Path:
    zoo.save_weights(seeded_cnn(1), folder, max_shard_size=SHARD)
    return folder


def _rewrite(path: Path, change) -> None:
    path.write_bytes(change(path.read_bytes()))


def _flip_header_bit(data: bytes) -> bytes:
    data = bytearray(data)
    data[8] ^= 0x04  # the header's opening brace: "{" becomes a control character
    return bytes(data)


def _edit_index(folder: Path, change) -> None:
    index = json.loads((folder / INDEX_NAME).read_text())
    change(index)
    (folder / INDEX_NAME).write_text(json.dumps(index))


def _first_shard(folder: Path) -> Path:
    return folder / sorted(set(json.loads((folder / INDEX_NAME).read_text())["weight_map"].values()))[0]


def _outside(folder: Path, name: str) -> None:
    def change(index):
        key = next(iter(index["weight_map"]))
        index["weight_map"][key] = name
    _edit_index(folder, change)


def _other_save_shard(folder: Path) -> None:
    """Replace one shard by the same shard of another save (a save interrupted between renames)."""
    other = folder / "other"
    zoo.save_weights(seeded_cnn(2), other, max_shard_size=SHARD)
    shard = _first_shard(folder)
    shard.write_bytes((other / shard.name).read_bytes())
    for path in other.iterdir():
        path.unlink()
    other.rmdir()


def _keys_moved(folder: Path) -> None:
    def change(index):
        names = sorted(set(index["weight_map"].values()))
        key = next(k for k, v in index["weight_map"].items() if v == names[0])
        index["weight_map"][key] = names[1]
    _edit_index(folder, change)


CASES = {
    # name: (make, spoil, error type, message pieces)
    "empty": (_single, lambda f: f.write_bytes(b""), WeightsFileError, ["is empty (0 bytes)", WEIGHTS_NAME]),
    "truncated-half": (_single, lambda f: _rewrite(f, lambda d: d[: len(d) // 2]), WeightsFileError,
                       ["truncated or corrupt", WEIGHTS_NAME]),
    "truncated-one-byte": (_single, lambda f: _rewrite(f, lambda d: d[:-1]), WeightsFileError,
                           ["truncated or corrupt"]),
    "header-bit-flipped": (_single, lambda f: _rewrite(f, _flip_header_bit), WeightsFileError,
                           ["not a readable safetensors file"]),
    "not-safetensors": (_single, lambda f: f.write_text("hello, not weights"), WeightsFileError,
                        ["not a readable safetensors file"]),
    "missing-shard": (_sharded, lambda f: _first_shard(f).unlink(), FileNotFoundError,
                      ["missing", "model-00001-of-"]),
    "extra-shard": (_sharded, lambda f: (f / "model-00099-of-00099.safetensors").write_bytes(
        _first_shard(f).read_bytes()), WeightsFileError, ["does not name", "model-00099-of-00099.safetensors"]),
    "index-names-parent": (_sharded, lambda f: _outside(f, "../x.safetensors"), WeightsFileError,
                           ["'../x.safetensors'", "no paths"]),
    "index-names-absolute": (_sharded, lambda f: _outside(f, "/tmp/x.safetensors"), WeightsFileError,
                             ["'/tmp/x.safetensors'", "no paths"]),
    "index-names-sub-path": (_sharded, lambda f: _outside(f, "sub/x.safetensors"), WeightsFileError,
                             ["'sub/x.safetensors'", "no paths"]),
    "index-names-hidden-file": (_sharded, lambda f: _outside(f, ".x.safetensors"), WeightsFileError,
                                ["'.x.safetensors'", "plain"]),
    "index-not-json": (_sharded, lambda f: (f / INDEX_NAME).write_text("{oops"), WeightsFileError,
                       ["not valid JSON", INDEX_NAME]),
    "index-without-map": (_sharded, lambda f: (f / INDEX_NAME).write_text("{}"), WeightsFileError,
                          ["'weight_map'"]),
    "index-and-single-file": (_sharded, lambda f: _single(f / "x").rename(f / WEIGHTS_NAME), WeightsFileError,
                              ["both", "two saves"]),
    "shard-of-another-save": (_sharded, _other_save_shard, WeightsFileError, ["another save"]),
    "shard-keys-disagree-with-index": (_sharded, _keys_moved, WeightsFileError, ["does not hold what the index"]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_weights_are_refused_clearly_and_the_model_is_untouched(tmp_path, case):
    make, spoil, error_type, pieces = CASES[case]
    (tmp_path / "x").mkdir()
    target = make(tmp_path)
    spoil(target)
    model = zoo.create("cnn")
    before = values(model)
    with pytest.raises(error_type) as error:
        zoo.load_weights(model, target)
    assert isinstance(error.value, (ValueError, FileNotFoundError))
    assert "safetensors_rust" not in type(error.value).__module__
    for piece in pieces:
        assert piece in str(error.value), (piece, str(error.value))
    assert same(values(model), before)  # all or nothing: no weight was assigned


@pytest.mark.parametrize("spoil", ["bit-flip", "truncate", "remove"])
def test_a_recorded_folder_refuses_files_that_do_not_match_their_hashes(tmp_path, spoil):
    save_folder(seeded_cnn(1), tmp_path / "m", max_shard_size=SHARD)
    shard = _first_shard(tmp_path / "m")
    if spoil == "bit-flip":  # in the tensor data: only the recorded sha256 can tell
        _rewrite(shard, lambda d: d[:-3] + bytes([d[-3] ^ 1]) + d[-2:])
    elif spoil == "truncate":
        _rewrite(shard, lambda d: d[:-100])
    else:
        shard.unlink()
    with pytest.raises(IntegrityError, match=shard.name):
        zoo.load(tmp_path / "m")


# --- 3. bad config.json / metadata.json --------------------------------------------------------


def _folder(tmp_path: Path) -> Path:
    save_folder(seeded_cnn(1), tmp_path / "m")
    return tmp_path / "m"


def _edit_json(path: Path, change) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def _keras_folder(tmp_path: Path, layers) -> Path:
    """A folder of a plain Keras model (no registered builder), spoiled by ``layers``."""
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(2, name="dense")(inputs), name="plain")
    save_folder(model, tmp_path / "k")
    _edit_json(tmp_path / "k" / "config.json", lambda c: c["keras_config"]["config"]["layers"].append(layers))
    return tmp_path / "k"


def _keras_file(tmp_path: Path, layers) -> Path:
    """A ``.keras`` archive of a plain Keras model, its config.json spoiled by ``layers``."""
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(2, name="dense")(inputs), name="plain")
    model.save(tmp_path / "clean.keras")
    spoiled = tmp_path / "plain.keras"
    with zipfile.ZipFile(tmp_path / "clean.keras") as source, zipfile.ZipFile(spoiled, "w") as target:
        for item in source.infolist():
            data = source.read(item)
            if item.filename == "config.json":
                config = json.loads(data)
                config["config"]["layers"].append(layers)
                data = json.dumps(config).encode()
            target.writestr(item, data)
    return spoiled


def _rewrite_config(folder, change):
    """Change config.json as a save would have written it: metadata.json records its sha256."""
    _edit_json(folder / "config.json", change)
    _edit_json(folder / "metadata.json", lambda m: m.update(config_sha256=sha256_of(folder / "config.json")))


_PROBE = "zoo_integrity_probe_module"

CONFIG_CASES = {
    "config-not-json": (lambda p: (p / "config.json").write_text("{not json"), ValueError, ["not valid JSON"]),
    "config-a-list": (lambda p: (p / "config.json").write_text("[1, 2]"), ValueError, ["must hold a JSON object"]),
    "config-args-a-string": (lambda p: _edit_json(p / "config.json", lambda c: c.update(config="rm -rf")),
                             ValueError, ["'config' must be a dict", "rm -rf"]),
    "unknown-architecture": (lambda p: _rewrite_config(p, lambda c: c.update(architecture="cnnn", tag=None)),
                             ValueError, ["Unknown model 'cnnn'", "Did you mean 'cnn'"]),
    "metadata-not-json": (lambda p: (p / "metadata.json").write_text("\x00\x01"), ValueError, ["metadata.json", "not valid JSON"]),
    "metadata-a-list": (lambda p: (p / "metadata.json").write_text("[1, 2]"), ValueError, ["metadata.json", "JSON object"]),
    "config-of-another-format": (lambda p: _edit_json(p / "config.json", lambda c: c.update(format="timm")), ValueError,
                                 ["'timm'"]),
    "metadata-record-outside-folder": (
        lambda p: _edit_json(p / "metadata.json", lambda m: m["weights"]["files"].update(
            {"../../etc/passwd": {"sha256": "0" * 64, "size": 1}})),
        ValueError, ["'../../etc/passwd'", "no paths"]),
    "metadata-record-malformed": (
        lambda p: _edit_json(p / "metadata.json", lambda m: m["weights"]["files"].update(
            {WEIGHTS_NAME: {"sha256": "abc"}})),
        ValueError, ["sha256", "64 hex digits", "'abc'"]),
}


@pytest.mark.parametrize("case", sorted(CONFIG_CASES))
def test_corrupt_config_or_metadata_is_refused_clearly(tmp_path, case):
    spoil, error_type, pieces = CONFIG_CASES[case]
    folder = _folder(tmp_path)
    spoil(folder)
    with pytest.raises(error_type) as error:
        zoo.load(folder)
    for piece in pieces:
        assert piece in str(error.value), (piece, str(error.value))


@pytest.mark.parametrize("layer, pieces", [
    ({"module": "keras.layers", "class_name": "Lambda", "registered_name": None,
      "config": {"name": "code", "function": {"class_name": "__lambda__", "config": {"code": "4wEA"}}}},
     ["'Lambda'", "Python code"]),
    ({"module": _PROBE, "class_name": "Evil", "registered_name": None, "config": {}},
     [f"module '{_PROBE}'", "keras and zoo"]),
    ({"module": "keras.layers", "class_name": "Evil", "registered_name": "evilpkg>Evil", "config": {}},
     ["'evilpkg>Evil'"]),
], ids=["lambda", "foreign-module", "foreign-registered-name"])
@pytest.mark.parametrize("make", [_keras_folder, _keras_file], ids=["zoo-folder", "keras-file"])
def test_hostile_keras_configs_are_refused_before_anything_is_imported(tmp_path, monkeypatch, layer, pieces, make):
    probe = tmp_path / "probe"
    probe.mkdir()
    (probe / f"{_PROBE}.py").write_text(
        f"from pathlib import Path\nPath({str(tmp_path / 'imported')!r}).write_text('ran')\nclass Evil: pass\n")
    monkeypatch.syspath_prepend(str(probe))
    handle = make(tmp_path, layer)
    with pytest.raises(UnsafeConfigError) as error:
        zoo.load(handle)
    assert isinstance(error.value, ValueError)
    for piece in pieces:
        assert piece in str(error.value), (piece, str(error.value))
    assert not (tmp_path / "imported").exists()  # the foreign module never ran
    sys.modules.pop(_PROBE, None)


def test_a_compiled_keras_file_naming_keras_functions_still_loads(tmp_path):
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax", name="dense")(inputs), name="plain")
    model.compile(optimizer="sgd", loss=keras.losses.sparse_categorical_crossentropy, metrics=["accuracy"])
    model.save(tmp_path / "compiled.keras")
    with zipfile.ZipFile(tmp_path / "compiled.keras") as archive:
        assert '"class_name": "function"' in archive.read("config.json").decode()  # the loss, by its Keras name
    x = np.ones((1, 4), "float32")
    np.testing.assert_allclose(predict(zoo.load(tmp_path / "compiled.keras"), x), predict(model, x), rtol=1e-6)


def test_a_keras_file_that_is_not_an_archive_is_refused_clearly(tmp_path):
    (tmp_path / "model.keras").write_text("not a zip")
    with pytest.raises(ValueError, match=r"is not a Keras 3 `.keras` archive"):
        zoo.load(tmp_path / "model.keras")


def test_a_plain_keras_folder_still_loads(tmp_path):
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(2, name="dense")(inputs), name="plain")
    save_folder(model, tmp_path / "k")
    x = np.ones((1, 4), "float32")
    np.testing.assert_array_equal(predict(zoo.load(tmp_path / "k"), x), predict(model, x))


def test_a_plain_keras_folder_of_zoo_layers_loads_in_a_fresh_process(tmp_path):
    """Keras finds registered classes only once their module is imported: a folder holding a plain
    Keras model built from zoo's ResidualUnit failed with "Could not locate class 'ResidualUnit'"
    in a new process (``.keras`` files registered zoo's layers first; folders did not)."""
    from conftest import run_python

    from zoo.layers import ResidualUnit

    inputs = keras.Input((8, 8, 4))
    outputs = keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(ResidualUnit(4)(inputs)))
    model = keras.Model(inputs, outputs, name="mine")
    save_folder(model, tmp_path / "mine")
    loaded = run_python(f"import zoo; print(zoo.load({str(tmp_path / 'mine')!r}).count_params())")
    assert int(loaded.strip().splitlines()[-1]) == model.count_params()


def test_a_cache_blob_linked_into_the_shared_xet_store_is_checked_by_its_etag(tmp_path):
    """huggingface_hub 2.4 makes ``blobs/<etag>`` a link into its cache-wide store of Xet files
    (``<cache>/blobs/xx/<xet hash>``, which other repos' links share). Following every link took the
    Xet hash for the ETag: a good file was reported changed, evicted, and the shared file deleted.
    Bad bytes there are evicted along the whole chain, or a new download would link them again."""
    import hashlib

    from zoo.format import FileRecord, evict
    from zoo.hub import _problem

    data = b"weights" * 100
    sha256 = hashlib.sha256(data).hexdigest()
    xet_hash = hashlib.sha256(b"another hash").hexdigest()  # 64 hex digits too, like a sha256
    shared = tmp_path / "blobs" / xet_hash[:2] / xet_hash
    shared.parent.mkdir(parents=True)
    shared.write_bytes(data)
    repo = tmp_path / "models--me--net"
    (repo / "blobs").mkdir(parents=True)
    (repo / "blobs" / sha256).symlink_to(Path("..", "..", "blobs", xet_hash[:2], xet_hash))
    snapshot = repo / "snapshots" / ("a" * 40)
    snapshot.mkdir(parents=True)
    link = snapshot / "model.safetensors"
    link.symlink_to(Path("..", "..", "blobs", sha256))
    assert link.read_bytes() == data
    assert _problem(link, FileRecord("model.safetensors", sha256, len(data))) is None
    assert _problem(link, FileRecord("model.safetensors", "0" * 64, len(data)))[0] is False  # the repo's record disagrees
    assert shared.read_bytes() == data  # a good file is left alone
    shared.write_bytes(b"damaged" * 100)
    again, detail = _problem(link, FileRecord("model.safetensors", sha256, len(data)))
    assert again is True and f"the Hub sent them as {sha256}" in detail
    evict(link)
    assert not link.is_symlink() and not (repo / "blobs" / sha256).is_symlink() and not shared.exists()


def test_a_folder_under_home_is_saved_whole_where_zoo_load_reads_it(tmp_path, monkeypatch):
    """save_folder("~/exports/cnn") made a literal ./~/exports/cnn for config and metadata while the
    weights went to $HOME/exports/cnn (save_weights expands ~), then failed with FileNotFoundError."""
    home, elsewhere = tmp_path / "home", tmp_path / "cwd"
    home.mkdir(), elsewhere.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(elsewhere)
    model = seeded_cnn(3)
    save_folder(model, "~/exports/cnn")
    assert sorted(p.name for p in (home / "exports" / "cnn").iterdir()) == ["config.json", "metadata.json", "model.safetensors"]
    assert not (elsewhere / "~").exists()
    assert read_folder("~/exports/cnn").build["architecture"] == "cnn"
    x = sample_batch(model)
    np.testing.assert_array_equal(predict(zoo.load("~/exports/cnn"), x), predict(model, x))


# --- 3. weights that do not fit the model built ------------------------------------------------


def test_wrong_input_channels_name_the_mismatched_keys(tmp_path):
    save_folder(seeded_cnn(1), tmp_path / "m")
    with pytest.raises(WeightsMismatchError) as error:
        zoo.load(tmp_path / "m", input_shape=(28, 28, 3))
    message = str(error.value)
    kh, kw, _, filters = zoo.create("cnn").get_layer("conv1").kernel.shape
    assert f"Shape mismatch for 'conv1/kernel': model {(kh, kw, 3, filters)}, file {(kh, kw, 1, filters)}" in message
    assert "input_shape" in message


@pytest.mark.skipif(not (Path(__file__).resolve().parents[1] / "weights" / "cnn.fmnist").is_dir(),
                    reason="cnn.fmnist is not staged in this checkout")
def test_released_weights_into_three_channels_name_the_mismatched_keys():
    with pytest.raises(WeightsMismatchError, match=r"Shape mismatch for 'conv1/kernel'"):
        zoo.load("cnn", input_shape=(28, 28, 3))


def test_integer_tensors_for_float_weights_are_refused(tmp_path):
    zoo.save_weights(seeded_cnn(1), tmp_path / "w.safetensors")
    arrays = read_weights(tmp_path / "w.safetensors")
    arrays["fc1/bias"] = arrays["fc1/bias"].astype(np.int32)
    save_file(arrays, str(tmp_path / "w.safetensors"))
    model = zoo.create("cnn")
    before = values(model)
    with pytest.raises(WeightsMismatchError, match=r"Dtype mismatch for 'fc1/bias': model float32, file int32"):
        zoo.load_weights(model, tmp_path / "w.safetensors")
    assert same(values(model), before)


# --- 3. names and inputs -----------------------------------------------------------------------


@pytest.mark.parametrize("call", ["create", "load"])
@pytest.mark.parametrize("name, pieces", [
    ("cnnn", ["Unknown model 'cnnn'", "Did you mean 'cnn'"]),
    ("resnet43", ["Unknown model 'resnet43'", "'resnet34'"]),
    ("cnn.fmnst", ["fmnst", "fmnist"]),
])
def test_unknown_names_and_tags_suggest_close_matches(call, name, pieces):
    with pytest.raises(ValueError) as error:
        getattr(zoo, call)(name, **({"weights": None} if call == "load" else {}))
    for piece in pieces:
        assert piece in str(error.value), (piece, str(error.value))


@pytest.mark.parametrize("handle", ["runs/typo", "./cnn-0", "missing.safetensors", "~/no-such-zoo-folder", Path("nowhere")])
def test_a_handle_that_names_a_missing_path_says_so(handle):
    with pytest.raises(FileNotFoundError, match=r"No folder or file at .* Received: handle=") as error:
        zoo.load(handle)
    assert "Unknown model" not in str(error.value) and "~" not in str(error.value).split(". A model")[0]


def test_a_shard_size_that_is_not_a_positive_int_is_refused(tmp_path):
    with pytest.raises(ValueError, match=r"positive int \(bytes\). Received: 0"):
        zoo.save_weights(seeded_cnn(1), tmp_path / "w", max_shard_size=0)
    assert not (tmp_path / "w").exists()


@pytest.mark.parametrize("weights, error_type", [("defualt", FileNotFoundError), (False, ValueError), (3, ValueError)])
def test_a_bad_weights_argument_names_what_is_accepted(weights, error_type):
    with pytest.raises(error_type) as error:
        zoo.load("cnn", weights=weights)
    assert "'default'" in str(error.value) and f"Received: weights={weights!r}" in str(error.value)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_predict_refuses_non_finite_pixels(bad):
    from zoo import prediction

    image = np.full((28, 28), 100.0, np.float32)
    image[3, 4] = bad
    with pytest.raises(ValueError, match="NaN or inf"):
        prediction.predict(zoo.create("cnn"), [image])


# --- run-folder figures and results are written atomically -------------------------------------


def test_a_failed_figure_write_keeps_the_previous_figure(tmp_path, monkeypatch):
    from matplotlib.figure import Figure

    from zoo import plots

    history = tmp_path / "history.csv"
    history.write_text("epoch,accuracy,val_accuracy\n0,0.5,0.4\n1,0.7,0.6\n")
    target = plots.plot_history(history, tmp_path / "training_curves.png")
    before = target.read_bytes()
    assert before.startswith(b"\x89PNG")  # the format follows the target's suffix, not the temporary name's

    def half_then_fail(self, fname, **kwargs):
        Path(fname).write_bytes(b"\x89PNG half a picture")
        raise OSError("disk full")

    monkeypatch.setattr(Figure, "savefig", half_then_fail)
    with pytest.raises(OSError, match="disk full"):
        plots.plot_history(history, target)
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["history.csv", "training_curves.png"]
