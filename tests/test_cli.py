"""The ``zoo`` command end to end, through the installed console script in a subprocess (issue 13).

Each test runs ``zoo ...`` as a user would and checks what it prints and writes against what
the library computes in this process.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import zoo
from zoo.cli import main as zoo_main
from zoo.data.fashion_mnist import find_data_dir
from zoo.evaluation import evaluate_name
from zoo.format import read_folder, save_folder

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
#: The shipped example pictures and their true labels (examples/README.md).
EXAMPLE_LABELS = {
    "sneaker.png": "Sneaker",
    "trouser-on-white.jpg": "Trouser",
    "bag-wide.png": "Bag",
    "ankle-boot-on-white.jpg": "Ankle boot",
}
#: The console script runs in the user's default backend (TensorFlow unless KERAS_BACKEND says
#: otherwise); its subprocess tests run once, under TensorFlow, and the library under them is
#: tested in every backend (tests/test_predict.py). Each subprocess imports a framework anew (5-7 s
#: here), so each command goes through the installed script once or twice and its refusals are
#: checked in-process through the same entry point (``zoo.cli.main``).
console = pytest.mark.skipif(
    os.environ.get("KERAS_BACKEND", "tensorflow") != "tensorflow", reason="console-script tests run under TensorFlow"
)
needs_data = pytest.mark.skipif(find_data_dir() is None, reason="Fashion-MNIST IDX files not found ($FASHION_MNIST_DIR)")


@pytest.fixture(autouse=True)
def _restore_process_state():
    """Commands and scripts run in this process may set environment variables (TF_ENABLE_ONEDNN_OPTS) or
    extend sys.path (scripts/release.py): both are put back after each test."""
    environment, path = dict(os.environ), list(sys.path)
    yield
    os.environ.clear()
    os.environ.update(environment)
    sys.path[:] = path


def zoo_command() -> str:
    beside = Path(sys.executable).parent / "zoo"
    found = str(beside) if beside.exists() else shutil.which("zoo")
    if found is None:
        pytest.fail("the `zoo` console script is not installed (pip install -e .)")
    return found


def run_zoo(*args: str, env: dict | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    full_env = {**os.environ, **(env or {})}
    full_env = {key: value for key, value in full_env.items() if value is not None}  # None: unset
    return subprocess.run([zoo_command(), *args], capture_output=True, text=True, env=full_env, cwd=cwd, timeout=600)


def zoo_in_process(capsys, *args: str) -> tuple[int, str, str]:
    """``zoo ARGS`` through the console script's entry point in this process: (status, stdout, stderr)."""
    capsys.readouterr()
    try:
        status = zoo_main(list(args))
    except SystemExit as exit_:  # argparse's usage errors
        status = exit_.code
    out, err = capsys.readouterr()
    return status, out, err


@console
def test_list_prints_the_registry_without_importing_keras():
    result = run_zoo("list")
    assert result.returncode == 0, result.stderr
    names = [line.split()[0] for line in result.stdout.splitlines()[1:]]
    assert names == zoo.list_models()
    pretrained = run_zoo("list", "--pretrained", "--json")
    assert [row["name"] for row in json.loads(pretrained.stdout)] == zoo.list_models(pretrained=True)
    probe = subprocess.run(
        [sys.executable, "-c", "import sys; from zoo.cli import main; main(['list']); print('keras' in sys.modules)"],
        capture_output=True, text=True, check=True,
    )
    assert probe.stdout.strip().endswith("False")


@console
def test_list_shows_that_a_plugin_failed_to_load():
    # The catalog of an installation with plugins is built while the frameworks' logs are hidden;
    # zoo's own warning about a broken plugin must still reach the user.
    code = (
        "import importlib.metadata, sys\n"
        "class Broken:\n"
        "    name = 'broken-import'\n"
        "    def load(self):\n"
        "        raise ImportError('no module named tensorflow_addons')\n"
        "importlib.metadata.entry_points = lambda group=None: [Broken()]\n"
        "from zoo.cli import main\n"
        "sys.exit(main(['list', 'cnn']))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0 and result.stdout.splitlines()[1].startswith("cnn"), result.stderr[-2000:]
    assert "zoo plugin 'broken-import' failed to load" in result.stderr, result.stderr[-2000:]


def test_quiet_native_logs_passes_on_zoo_warnings_and_every_warning_when_it_fails():
    import warnings

    import zoo.registry
    from zoo.cli import quiet_native_logs

    def warn_twice():
        warnings.warn_explicit("from a framework", UserWarning, "/elsewhere/framework.py", 1)
        warnings.warn_explicit("from zoo", UserWarning, zoo.registry.__file__, 1)

    with warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter("always")
        with quiet_native_logs():
            warn_twice()
        assert [str(w.message) for w in shown] == ["from zoo"]
        shown.clear()
        with pytest.raises(ImportError), quiet_native_logs():
            warn_twice()
            raise ImportError("the backend did not import")
        assert sorted(str(w.message) for w in shown) == ["from a framework", "from zoo"]


@console
def test_list_pattern_without_match_fails_clearly():
    result = run_zoo("list", "nothing*")
    assert result.returncode == 1
    assert "No model matches 'nothing*'" in result.stderr
    as_json = run_zoo("list", "nothing*", "--json")
    assert as_json.returncode == 1 and json.loads(as_json.stdout) == []
    # A pattern with a dot lists weight tags, the planned ones too.
    tags = run_zoo("list", "*.fmnist")
    assert tags.returncode == 0 and "resnet18.fmnist" in tags.stdout and "planned" in tags.stdout


@console
def test_info_is_readable_and_json_matches_the_library():
    text = run_zoo("info", "resnet34")
    assert text.returncode == 0, text.stderr
    assert text.stdout.startswith("resnet34: ")
    assert f"parameters: {zoo.info('resnet34')['parameters']:,}" in text.stdout
    assert "release floor: {'accuracy': 0.945}" in text.stdout  # nothing below it is released
    # The Hub line says whether the weights are published (pinned) and shows the command that trained them.
    release = zoo.registry.get_spec("resnet34").weight("fmnist").release
    hub_line = next(line for line in text.stdout.splitlines() if line.strip().startswith("hub: "))
    assert (f"@{release.hub_revision[:12]}" in hub_line) if release.hub_revision else ("not published yet" in hub_line)
    assert hub_line.endswith(f"train: {release.train_command}")
    data = json.loads(run_zoo("info", "cnn.fmnist", "--json").stdout)
    expected = zoo.info("cnn.fmnist")
    assert data["parameters"] == expected["parameters"]
    assert data["weights"]["fmnist"]["release"]["metrics"] == expected["weights"]["fmnist"]["release"]["metrics"]


@console
def test_info_of_an_unknown_name_names_close_matches_without_a_traceback(capsys):
    result = run_zoo("info", "resnet35")
    assert result.returncode == 2
    assert "Unknown model 'resnet35'" in result.stderr and "resnet34" in result.stderr
    assert "Traceback" not in result.stderr
    status, _, err = zoo_in_process(capsys, "info", "CNN")  # names are lower-case: suggested whatever the case
    assert status == 2 and "Unknown model 'CNN'. Did you mean 'cnn'" in err


@console
def test_predict_names_the_shipped_examples_and_says_what_it_did():
    images = [str(EXAMPLES / name) for name in EXAMPLE_LABELS]
    result = run_zoo("predict", "cnn", *images, "--top-k", "3", "--json")
    assert result.returncode == 0, result.stderr
    predictions = json.loads(result.stdout)
    assert [p["top_k"][0]["label"] for p in predictions] == list(EXAMPLE_LABELS.values())
    for p in predictions:
        assert len(p["top_k"]) == 3
        assert p["top_k"][0]["probability"] >= p["top_k"][1]["probability"]
    inverted = {Path(p["source"]).name for p in predictions if any(n.startswith("inverted") for n in p["notes"])}
    assert inverted == {"trouser-on-white.jpg", "ankle-boot-on-white.jpg"}
    text = run_zoo("predict", "cnn", images[0], "--top-k", "2")
    assert "Sneaker" in text.stdout.splitlines()[1]


@console
def test_predict_refuses_an_unreadable_picture_by_name(tmp_path, capsys):
    bad = tmp_path / "not-a-picture.png"
    bad.write_text("hello")
    status, _, err = zoo_in_process(capsys, "predict", "cnn", str(bad))
    assert status == 2
    assert f"Cannot read {str(bad)!r} as a picture" in err
    assert "Traceback" not in err and err.count("\n") == 1
    status, _, err = zoo_in_process(capsys, "predict", "cnn", str(tmp_path / "missing.jpg"))
    assert status == 2 and "No picture at" in err
    (tmp_path / "empty").mkdir()
    status, _, err = zoo_in_process(capsys, "predict", "cnn", str(tmp_path / "empty"))
    assert status == 2 and "is a folder with no picture in it" in err


@console
def test_predict_takes_a_folder_for_the_pictures_in_it(capsys):
    status, out, err = zoo_in_process(capsys, "predict", "cnn", str(EXAMPLES), "--json")
    assert status == 0, err
    by_name = {Path(p["source"]).name: p["top_k"][0]["label"] for p in json.loads(out)}
    assert {name: by_name.get(name) for name in EXAMPLE_LABELS} == EXAMPLE_LABELS


@console
def test_predict_hides_the_frameworks_start_up_logs_unless_verbose():
    image = str(EXAMPLES / "sneaker.png")
    # tests/conftest.py sets TF_CPP_MIN_LOG_LEVEL; a user's shell does not.
    quiet = run_zoo("predict", "cnn", image, env={"TF_CPP_MIN_LOG_LEVEL": None})
    assert quiet.returncode == 0 and quiet.stderr.strip() == "", quiet.stderr
    loud = run_zoo("predict", "cnn", image, "--verbose", env={"TF_CPP_MIN_LOG_LEVEL": None})
    assert loud.returncode == 0 and loud.stderr.strip() != ""


@console
def test_localizer_prediction_draws_its_box_and_never_overwrites(tmp_path, capsys):
    model = zoo.create("xception_localizer", input_shape=(72, 72, 1))
    folder = save_folder(model, tmp_path / "localizer", metadata={"dataset": "fashion_mnist_localization",
                                                                  "label_names": [f"item {i}" for i in range(10)]})
    image = str(EXAMPLES / "bag-wide.png")
    out = tmp_path / "boxes"
    first = run_zoo("predict", str(folder), image, "--out", str(out), "--json")
    assert first.returncode == 0, first.stderr
    [prediction] = json.loads(first.stdout)
    x0, y0, x1, y1 = prediction["box"]
    assert 0 <= x0 <= x1 <= 160 and 0 <= y0 <= y1 <= 96  # in the picture's own pixels
    drawn = out / "bag-wide.box.png"
    from PIL import Image

    assert Image.open(drawn).size == (160, 96)
    before = drawn.read_bytes()
    status, _, err = zoo_in_process(capsys, "predict", str(folder), image, "--out", str(out))
    assert status == 2 and "exist" in err and drawn.read_bytes() == before
    assert zoo_in_process(capsys, "predict", str(folder), image, "--out", str(out), "--overwrite")[0] == 0
    status, _, err = zoo_in_process(capsys, "predict", str(folder), image, "--out", str(drawn))  # a file
    assert status == 2 and "is a file" in err and drawn.read_bytes() == before


@needs_data
@console
def test_eval_compares_with_the_record_and_fails_beyond_tolerance(tmp_path, capsys):
    good = run_zoo("eval", "cnn", "--limit", "500", "--json")
    assert good.returncode == 0, good.stderr
    report = json.loads(good.stdout)
    measured = evaluate_name("cnn", limit=500)["accuracy"]
    assert report["measured"]["accuracy"] == measured
    assert report["recorded"]["accuracy"] == zoo.info("cnn")["weights"]["fmnist"]["release"]["metrics"]["accuracy"]
    assert report["ok"] is True
    # A folder whose record claims more than its weights do, on the same 500 images.
    folder = save_folder(zoo.load("cnn"), tmp_path / "claims", metadata={
        "dataset": "fashion_mnist", "metrics": {"accuracy": round(measured - 0.05, 4)}, "evaluation": {"limit": 500}})
    status, out, _ = zoo_in_process(capsys, "eval", str(folder), "--limit", "500")
    assert status == 1
    assert "DIFFERS" in out and f"{measured - 0.05:.4f}" in out


def test_eval_refuses_models_whose_classes_are_not_fashion_mnists(tmp_path, capsys):
    from zoo.evaluation import compare_with_record

    three = save_folder(zoo.create("cnn", num_classes=3), tmp_path / "three")
    own = save_folder(zoo.create("cnn"), tmp_path / "own", metadata={
        "dataset": None, "data": {"kind": "image_folder", "name": "shoes"}, "evaluation": {"split": "test"}})
    with pytest.raises(ValueError, match="outputs 3 classes; Fashion-MNIST has 10.*Received: classes=3"):
        evaluate_name(three, limit=8)
    with pytest.raises(ValueError, match="outputs 3 classes"):
        compare_with_record(three, limit=8)
    with pytest.raises(ValueError, match="trained on 'shoes', not on Fashion-MNIST.*data.kind='image_folder'"):
        evaluate_name(own, limit=8)
    status, _, err = zoo_in_process(capsys, "eval", str(own), "--limit", "8")
    assert status == 2 and "trained on 'shoes'" in err
    assert set(evaluate_name(save_folder(zoo.create("xception_localizer"), tmp_path / "loc"), limit=4)) >= {"box_iou"}


@console
def test_eval_rejects_a_bad_limit(capsys):
    status, _, err = zoo_in_process(capsys, "eval", "cnn", "--limit", "0")
    assert status == 2 and "Received: limit=0" in err


def _script_main(name: str):
    spec = importlib.util.spec_from_file_location(f"zoo_script_{name}", ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


@console
def test_a_script_mistake_is_the_only_line_it_prints():
    """scripts/ print their one-line error without TensorFlow's native start-up logs before it
    (8 lines of absl/oneDNN logs came first), like `zoo` does."""
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "evaluate.py"), "nosuchmodel"],
                            capture_output=True, text=True, timeout=300,
                            env={k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"})
    assert result.returncode == 2
    assert result.stderr.splitlines() == [line for line in result.stderr.splitlines() if line.startswith("scripts/evaluate.py: error: ")]
    assert len(result.stderr.splitlines()) == 1, result.stderr


@pytest.mark.parametrize("script, args", [
    ("evaluate", ["cnn", "--lim", "16"]),
    ("release", ["runs/x", "cnn.fmnist", "--over"]),
    ("publish", ["runs/x", "me/model", "--reg", "cnn.fmnist"]),
])
def test_scripts_take_flags_by_their_full_names_only(capsys, script, args):
    """An abbreviation (argparse's default) is refused, as by scripts/train.py: `--over` is not `--overwrite`."""
    with pytest.raises(SystemExit) as stopped:
        _script_main(script)(args)
    assert stopped.value.code == 2 and "unrecognized arguments" in capsys.readouterr().err


@console
@pytest.mark.parametrize("script, args, piece", [
    ("evaluate", ["cnnn"], "Unknown model 'cnnn'. Did you mean 'cnn'"),
    ("evaluate", ["cnn", "--limit", "16", "--batch-size", "0"], "Received: batch_size=0"),
    ("release", ["{tmp}/no-run", "cnn.fmnist"], "No config.json in"),
    ("publish", ["{tmp}/no-folder", "me/model"], "No config.json in"),
])
def test_scripts_report_a_mistake_in_one_line(tmp_path, capsys, script, args, piece):
    status = _script_main(script)([a.replace("{tmp}", str(tmp_path)) for a in args])
    err = capsys.readouterr().err
    assert status == 2 and f"scripts/{script}.py: error: " in err and piece in err
    assert "Traceback" not in err


@console
def test_predict_refuses_two_pictures_that_would_write_the_same_file(tmp_path, capsys):
    (tmp_path / "a").mkdir()
    shutil.copy(EXAMPLES / "sneaker.png", tmp_path / "a" / "item.png")
    shutil.copy(EXAMPLES / "bag-wide.png", tmp_path / "item.png")
    status, _, err = zoo_in_process(capsys, "predict", "xception_localizer", str(tmp_path / "a" / "item.png"),
                                    str(tmp_path / "item.png"), "--out", str(tmp_path / "boxes"))
    assert status == 2 and "same name would write the same file" in err and "item.box.png" in err
    assert not (tmp_path / "boxes").exists()


@console
def test_predict_refuses_out_for_a_model_that_draws_no_boxes(tmp_path, capsys):
    (tmp_path / "boxes").mkdir()
    (tmp_path / "boxes" / "sneaker.box.png").write_bytes(b"a user's file")
    status, out, err = zoo_in_process(capsys, "predict", "cnn", str(EXAMPLES / "sneaker.png"), "--out", str(tmp_path / "boxes"))
    assert status == 2 and "is a classification model and draws none. Received: --out" in err and not out
    assert (tmp_path / "boxes" / "sneaker.box.png").read_bytes() == b"a user's file"


@console
def test_gpu_benchmark_refuses_an_output_folder_that_holds_results(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("zoo_gpu_benchmark", ROOT / "benchmarks" / "gpu.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    (tmp_path / "gpu_results.json").write_text("{}")
    with pytest.raises(SystemExit) as exit_:
        module.main(["--dry-run", "--out", str(tmp_path)])
    assert exit_.value.code == 2 and "--overwrite" in capsys.readouterr().err
    assert (tmp_path / "gpu_results.json").read_text() == "{}" and not (tmp_path / "logs").exists()


@console
def test_train_checks_the_push_repo_before_training(tmp_path, capsys):
    status, _, err = zoo_in_process(capsys, "train", "cnn", "--push", "../etc", "--output", str(tmp_path / "run"))
    assert status == 2 and "Received: repo_id='../etc'" in err
    assert not (tmp_path / "run").exists()


@console
def test_eval_and_predict_reject_a_bad_batch_size(capsys):
    status, _, err = zoo_in_process(capsys, "eval", "cnn", "--limit", "64", "--batch-size", "0")
    assert status == 2 and "Received: batch_size=0" in err
    with pytest.raises(ValueError, match="Received: batch_size=0"):
        zoo.predict("cnn", ROOT / "examples" / "sneaker.png", batch_size=0)


@console
def test_push_then_pull_then_predict_through_the_hub(tmp_path):
    try:
        from hub_server import LocalHub
    except ImportError:
        from tests.hub_server import LocalHub

    folder = save_folder(zoo.load("cnn"), tmp_path / "cnn", metadata={
        "dataset": "fashion_mnist", "label_names": list(zoo.info("cnn")["weights"]["fmnist"]["label_names"]),
        "metrics": {"accuracy": 0.9397}})
    with LocalHub(tmp_path / "hub") as hub:
        env = {"HF_ENDPOINT": hub.endpoint, "HF_TOKEN": "hf_test", "HF_HOME": str(tmp_path / "hf_home"),
               "HF_HUB_DISABLE_XET": "1", "HF_HUB_DISABLE_TELEMETRY": "1"}
        pushed = run_zoo("push", str(folder), "me/cnn-copy", env=env)
        assert pushed.returncode == 0, pushed.stderr
        sha = pushed.stdout.split("@")[1].split()[0]
        pulled = run_zoo("pull", f"me/cnn-copy@{sha}", env=env)
        assert pulled.returncode == 0, pulled.stderr
        snapshot = Path(pulled.stdout.strip())
        assert read_folder(snapshot).records == read_folder(folder).records
        from huggingface_hub import ModelCard

        card = ModelCard(hub_card(hub, "me/cnn-copy", sha, tmp_path / "card-cache"))
        assert card.data.library_name == "keras-zoo"
        assert card.data.eval_results[0].metric_value == 0.9397
        predicted = run_zoo("predict", f"hf://me/cnn-copy@{sha}", str(EXAMPLES / "sneaker.png"), "--json", env=env)
        assert predicted.returncode == 0, predicted.stderr
        assert json.loads(predicted.stdout)[0]["top_k"][0]["label"] == "Sneaker"


def hub_card(hub, repo_id: str, revision: str, cache_dir: Path) -> str:
    """The card as the Hub serves it, fetched into a cache of the test's own (no ambient token)."""
    from huggingface_hub import hf_hub_download

    return Path(hf_hub_download(repo_id, "README.md", revision=revision, endpoint=hub.endpoint, cache_dir=cache_dir,
                                token=False)).read_text()


@console
def test_export_runs_the_file_and_refuses_to_overwrite(tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("tf2onnx")
    target = tmp_path / "cnn.onnx"
    first = run_zoo("export", "cnn", "--format", "onnx", "-o", str(target))
    assert first.returncode == 0, first.stderr
    assert "largest difference from Keras" in first.stdout
    sidecar = json.loads((tmp_path / "cnn.onnx.json").read_text())
    assert sidecar["label_names"] == zoo.info("cnn")["weights"]["fmnist"]["label_names"]
    before = target.read_bytes()
    status, _, err = zoo_in_process(capsys, "export", "cnn", "--format", "onnx", "-o", str(target))
    assert status == 2 and "exists" in err and target.read_bytes() == before
    status, _, err = zoo_in_process(capsys, "export", "cnn", "--format", "coreml", "-o", str(tmp_path / "x"))
    assert status == 2 and "Received: format='coreml'" in err


@needs_data
@console
def test_train_writes_a_run_that_eval_reproduces(tmp_path, capsys):
    run = tmp_path / "run"
    trained = run_zoo("train", "cnn", "--epochs", "1", "--limit", "512", "--output", str(run), "--verbose", "0")
    assert trained.returncode == 0, trained.stderr[-2000:]
    recorded = json.loads((run / "metrics.json").read_text())["accuracy"]
    evaluated = run_zoo("eval", str(run), "--limit", "512", "--json")
    assert evaluated.returncode == 0, evaluated.stdout + evaluated.stderr
    report = json.loads(evaluated.stdout)
    assert report["recorded"]["accuracy"] == recorded
    assert abs(report["measured"]["accuracy"] - recorded) <= 0.005
    status, _, err = zoo_in_process(capsys, "train", "cnn", "--epochs", "1", "--limit", "512", "--output", str(run))
    assert status == 2 and "--overwrite" in err.splitlines()[-1]
    assert json.loads((run / "metrics.json").read_text())["accuracy"] == recorded
    status, out, _ = zoo_in_process(capsys, "train", "--help")
    assert status == 0 and out.startswith("usage: zoo train")


@needs_data
@console
def test_fine_tune_on_a_folder_then_predict_with_the_folder_names(tmp_path, capsys):
    from PIL import Image

    from zoo.data import load_fashion_mnist

    x, y = load_fashion_mnist("test", limit=300)
    classes = {"boots": 9, "trousers": 1, "bags": 8}
    for folder, label in classes.items():
        (tmp_path / "photos" / folder).mkdir(parents=True)
        for index in np.flatnonzero(y == label)[:12]:
            Image.fromarray(255 - x[index].squeeze()).resize((56, 56)).save(tmp_path / "photos" / folder / f"{index}.png")
    run = tmp_path / "run"
    trained = run_zoo("train", "cnn", "--data", str(tmp_path / "photos"), "--init-from", "cnn", "--freeze-backbone",
                      "--epochs", "2", "--probe-epochs", "1", "--output", str(run), "--verbose", "0")
    assert trained.returncode == 0, trained.stderr[-2000:]
    picture = next((tmp_path / "photos" / "bags").iterdir())
    predicted = run_zoo("predict", str(run), str(picture), "--top-k", "3", "--json")
    assert predicted.returncode == 0, predicted.stderr
    assert {row["label"] for row in json.loads(predicted.stdout)[0]["top_k"]} == set(classes)
    card = (run / "README.md").read_text()
    assert "base_model: keras-zoo/cnn.fmnist" in card and str(tmp_path) not in card
    status, _, err = zoo_in_process(capsys, "eval", str(run))
    assert status == 2 and "Received: dataset=" in err


@console
def test_registry_check_fails_on_a_stale_file_and_refuses_to_overwrite(tmp_path, capsys):
    # (The checkout's registry.json is checked fresh in-process by tests/test_registry.py.)
    stale = tmp_path / "registry.json"
    stale.write_text("{}\n")
    checked = run_zoo("registry", "--check", "--path", str(stale))
    assert checked.returncode == 1 and "stale" in checked.stderr
    status, _, err = zoo_in_process(capsys, "registry", "--path", str(stale))
    assert status == 2 and "--overwrite" in err and stale.read_text() == "{}\n"


def _two_tags(input_shape=(4,), num_classes=10, width=8):
    """A model whose two weight tags build different heads (a plugin's, here registered in-process)."""
    import keras

    inputs = keras.Input(input_shape)
    hidden = keras.layers.Dense(width, name="hidden")(inputs)
    return keras.Model(inputs, keras.layers.Dense(num_classes, name="predictions")(hidden))


def test_info_and_list_of_a_tag_show_the_model_that_tag_builds(capsys, monkeypatch):
    """The catalog's architecture fields describe the default tag; another tag that builds another
    model keeps its own config and parameter count (zoo info / zoo list showed the default's)."""
    from zoo import catalog, cli, listing, registry
    from zoo.registry import WeightSpec

    zoo.list_models()  # the built-ins registered first: the copy below is then a full registry
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    zoo.register_model(_two_tags, name="two_tags", head=("predictions",), weights=[
        WeightSpec("small", "d", "ten classes"), WeightSpec("big", "d", "a wide head", overrides={"num_classes": 1000}),
    ])
    monkeypatch.setattr(catalog, "all_specs", lambda: [registry.get_spec("two_tags")])
    models = catalog.catalog()["models"]
    assert "build" not in models["two_tags"]["weights"]["small"]  # the default tag: the entry itself
    monkeypatch.setattr(cli, "catalog_models", lambda: models)
    monkeypatch.setattr(listing, "catalog_models", lambda: models)
    for tag, classes in (("small", 10), ("big", 1000)):
        status, out, _ = zoo_in_process(capsys, "info", f"two_tags.{tag}", "--json")
        details = json.loads(out)
        assert status == 0 and details["config"]["num_classes"] == classes
        assert details["parameters"] == zoo.create(f"two_tags.{tag}").count_params()
    rows = {row.name: (row.parameters, row.input) for row in listing.model_rows("two_tags.*")}
    assert rows == {"two_tags.small": (4 * 8 + 8 + 8 * 10 + 10, "4"), "two_tags.big": (4 * 8 + 8 + 8 * 1000 + 1000, "4")}
    # A tag that fails to build is left out of the catalog with a warning; the others are listed.
    zoo.register_model(_two_tags, name="two_tags", head=("predictions",), overwrite=True, weights=[
        WeightSpec("small", "d", "ten classes"), WeightSpec("broken", "d", "no model", overrides={"width": -1}),
    ])
    with pytest.warns(UserWarning, match="two_tags.broken could not be built for the catalog"):
        weights = catalog.catalog()["models"]["two_tags"]["weights"]
    assert set(weights) == {"small", "broken"} and "build" not in weights["broken"]
