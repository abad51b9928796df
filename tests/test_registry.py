"""The registry: names and tags, listing, errors, info, plugins, registry.json."""

import importlib.metadata
import json
import os
import re
import subprocess
import sys
import textwrap

import pytest
from conftest import ROOT, run_python

import zoo
from zoo.catalog import CatalogStaleError, check_catalog, render_catalog
from zoo.registry import split_name


def test_list_models_with_wildcards_is_naturally_sorted():
    assert zoo.list_models() == ["cnn", "resnet18", "resnet34", "xception_localizer"]
    assert zoo.list_models("resnet*") == ["resnet18", "resnet34"]
    assert zoo.list_models(["cnn", "x*"]) == ["cnn", "xception_localizer"]
    assert zoo.list_models("nothing*") == []
    assert zoo.list_models("") == zoo.list_models() and zoo.list_models([]) == []  # timm: "" lists everything
    assert zoo.list_models("*.fmnist") == ["cnn.fmnist", "resnet18.fmnist", "resnet34.fmnist"]  # planned too
    assert zoo.list_models("*.fmnist", pretrained=True) == ["cnn.fmnist", "resnet34.fmnist"]
    assert zoo.list_models("cnn.fmnist") == ["cnn.fmnist"]
    # Each pattern on its own: a dotted one does not turn the others into tag patterns.
    assert zoo.list_models(["xception_localizer", "*.fmnist"]) == [
        "cnn.fmnist", "resnet18.fmnist", "resnet34.fmnist", "xception_localizer"]
    for bad in (None, 5, ["cnn", None]):
        with pytest.raises(ValueError, match=rf"fnmatch wildcards .* Received: pattern={re.escape(repr(bad))}"):
            zoo.list_models(bad)


def test_pretrained_listing_shows_only_weights_that_exist():
    released = zoo.list_models(pretrained=True)
    # Independently of the registry: the release records whose staged weights are in the checkout.
    on_disk = sorted(
        record.stem for record in (ROOT / "zoo" / "released").glob("*.json")
        if (ROOT / json.loads(record.read_text())["local_dir"] / "config.json").is_file()
    )
    assert released == on_disk and "cnn.fmnist" in released
    for name in released:
        arch, tag = split_name(name)
        assert zoo.info(name)["weights"][tag]["available"] is True
    for arch in zoo.list_models():
        for tag, weight in zoo.info(arch)["weights"].items():
            assert (f"{arch}.{tag}" in released) == weight["available"]
            if not weight["available"]:
                assert "release" not in weight


def test_unknown_name_suggests_the_closest_names():
    with pytest.raises(ValueError) as error:
        zoo.create("resnet43")
    assert "Did you mean 'resnet34'" in str(error.value)
    assert "Received: name='resnet43'" in str(error.value)
    with pytest.raises(ValueError, match=r"Unknown model 'CNN'. Did you mean 'cnn'"):
        zoo.create("CNN")


def test_unknown_tag_lists_known_tags():
    with pytest.raises(ValueError, match=r"Known tags: \['fmnist'\]"):
        zoo.create("cnn.imagenet")


def test_bare_name_means_default_tag_and_tag_overrides_apply():
    assert zoo.create("resnet34").input_shape == (None, 28, 28, 1)
    assert zoo.create("resnet34.fmnist").get_layer("stem_conv").kernel_size == (3, 3)
    model = zoo.create("resnet34", input_shape=(64, 64, 3), stem="imagenet", num_classes=100)
    assert model.output_shape == (None, 100)
    assert model.zoo_config["config"]["stem"] == "imagenet"


def test_info_reports_spec_config_inputs_parameters_and_tags():
    details = zoo.info("resnet34")
    assert details["name"] == "resnet34" and details["tag"] == "fmnist"
    assert details["input_spec"]["shape"] == [None, 28, 28, 1]
    assert details["parameters"] == zoo.create("resnet34").count_params() == 21_297_994  # fmnist tag: small stem, 1 channel, 10 classes
    assert details["default_config"]["stem"] == "imagenet" and details["config"]["stem"] == "small"
    assert details["weights"]["fmnist"]["label_names"][0] == "T-shirt/top"


def test_register_model_rejects_bad_names_and_builders():
    with pytest.raises(ValueError, match="Received: name='Bad.Name'"):
        zoo.register_model(name="Bad.Name")(lambda: None)
    with pytest.raises(TypeError, match="must give every argument a default"):

        @zoo.register_model
        def needs_argument(width):  # pragma: no cover - never built
            return width
    from zoo.registry import WeightSpec

    def tiny(input_shape=(4,), num_classes=2):  # pragma: no cover - never built
        return None

    with pytest.raises(ValueError, match=r"overrides of tiny.t1 must be arguments.*Received: unknown \['num_clases'\]"):
        zoo.register_model(tiny, weights=[WeightSpec("t1", "d", "x", overrides={"num_clases": 3})])
    with pytest.raises(ValueError, match="Received: tag='t1' twice"):
        zoo.register_model(tiny, weights=[WeightSpec("t1", "d1", "x"), WeightSpec("t1", "d2", "x")])
    assert "tiny" not in zoo.list_models()


def test_built_in_builder_registered_again_needs_overwrite_and_blocks_registry_json(monkeypatch):
    """A built-in's own builder registered by other code: its tags are not silently replaced, and
    with overwrite=True registry.json (zoo's own models) is refused, like any plugin's model."""
    from zoo import registry
    from zoo.catalog import check_no_plugins
    from zoo.models.cnn import cnn
    from zoo.registry import WeightSpec

    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    zoo.register_model(cnn, head=registry.get_spec("cnn").head, weights=registry.get_spec("cnn").weights.values())
    check_no_plugins()  # the same registration again: nothing changed
    with pytest.raises(ValueError, match=r"'cnn' is already registered \(by zoo.models.cnn\).*Received: tags \['mine'\]"):
        zoo.register_model(cnn, weights=[WeightSpec("mine", "d", "x")])
    assert sorted(registry.get_spec("cnn").weights) == ["fmnist"]
    zoo.register_model(cnn, name="cnn", weights=[WeightSpec("mine", "d", "x")], overwrite=True)
    with pytest.raises(ValueError, match=r"plugin models \['cnn \(test_registry\)'\]"):
        check_no_plugins()


def test_registry_json_is_up_to_date():
    """Fails when code changed but `python scripts/update_registry.py` was not run."""
    check_catalog(ROOT / "registry.json")


@pytest.mark.slow  # the catalog (every architecture built to count parameters) does not depend on the backend
def test_stale_registry_json_is_detected(tmp_path):
    stale = json.loads(render_catalog())
    stale["models"]["cnn"]["parameters"] += 1
    path = tmp_path / "registry.json"
    path.write_text(json.dumps(stale))
    with pytest.raises(CatalogStaleError, match=r"entries differ: \['cnn'\]"):
        check_catalog(path)
    damaged = tmp_path / "damaged.json"
    for text, expected in (('{"models": {', "is not valid JSON"), ("[1, 2]", "entries differ: \\['cnn', ")):
        damaged.write_text(text)
        with pytest.raises(CatalogStaleError, match=expected):
            check_catalog(damaged)
    # run from elsewhere, with another `zoo` first on the path: the script checks this checkout's code
    decoy = tmp_path / "decoy" / "zoo"
    decoy.mkdir(parents=True)
    (decoy / "__init__.py").write_text("raise ImportError('the installed zoo, not the checkout')\n")
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "update_registry.py"), "--check", f"--path={path}"],
        cwd=tmp_path, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(decoy.parent)},
    )
    assert result.returncode == 1 and "entries differ: ['cnn']" in result.stderr, result.stderr[-2000:]
    # a --path of the user's own is not replaced without their --overwrite (only the checkout's file is)
    mine = tmp_path / "mine.json"
    mine.write_text('{"my": "notes"}')
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "update_registry.py"), "--path", str(mine)],
                            cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 2 and "pass --overwrite" in result.stderr and mine.read_text() == '{"my": "notes"}'
    from zoo.catalog import write_catalog

    with pytest.raises(FileNotFoundError, match=r"No folder .*nowhere.* Received: path="):
        write_catalog(tmp_path / "nowhere" / "registry.json")  # a mistyped folder is not created
    assert not (tmp_path / "nowhere").exists()


class _FakeEntryPoint:
    def __init__(self, name, loaded):
        self.name, self._loaded = name, loaded

    def load(self):
        if isinstance(self._loaded, Exception):
            raise self._loaded
        return self._loaded


def Bad_Builder(input_shape):  # an upper-case name and an argument without a default: refused by register_model
    return None


def test_a_broken_plugin_warns_and_the_zoo_still_works(monkeypatch):
    from zoo import registry

    builtins = zoo.list_models()
    def cnn(input_shape=(4,), num_classes=2):  # pragma: no cover - never built: its name is taken
        return None

    def resnet18(input_shape=(4,), num_classes=2):  # pragma: no cover - never built
        return None

    points = [_FakeEntryPoint("broken-import", ImportError("no module named tensorflow_addons")),
              _FakeEntryPoint("bad-builder", Bad_Builder), _FakeEntryPoint("mycnn", cnn),
              _FakeEntryPoint("renamed", resnet18)]
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    zoo.register_model(resnet18, name="my_resnet")  # as its own decorator would: the entry point adds nothing
    monkeypatch.setattr(registry, "_plugins_loaded", False)
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda group: points)
    with pytest.warns(UserWarning) as warned:
        assert zoo.list_models() == sorted([*builtins, "my_resnet"])
    messages = [str(w.message) for w in warned]
    assert any("'broken-import' failed to load" in m for m in messages)
    assert any("'bad-builder' failed to load" in m for m in messages)
    assert any("'mycnn' failed to load" in m and "already registered by zoo.models.cnn" in m for m in messages)
    assert zoo.registry.get_spec("cnn").module == "zoo.models.cnn"
    assert not any("'renamed'" in m for m in messages) and registry.get_spec("resnet18").module == "zoo.models.resnet"


def test_a_plugin_model_that_does_not_build_is_left_out_of_the_catalog_with_a_warning(monkeypatch):
    """One plugin model whose builder raises does not break `zoo list` / the catalog of the others;
    a model with a list of outputs is described; a builder default that is no JSON value is refused
    at registration; a model registered over a built-in name does not take zoo's release record."""
    import keras

    from zoo import catalog, registry
    from zoo.registry import WeightSpec

    zoo.list_models()  # the built-ins registered first: the copy below is then a full registry
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))

    def needs_gpu(input_shape=(4,), num_classes=2):
        raise RuntimeError("needs a GPU")

    def two_heads(input_shape=(4,), num_classes=3):
        inputs = keras.Input(input_shape)
        return keras.Model(inputs, [keras.layers.Dense(num_classes, name="a")(inputs),
                                    keras.layers.Dense(2, name="b")(inputs)])

    zoo.register_model(needs_gpu)
    zoo.register_model(two_heads)
    assert zoo.info("two_heads")["outputs"] == {"a": [None, 3], "b": [None, 2]}
    monkeypatch.setattr(catalog, "all_specs", lambda: [registry.get_spec("needs_gpu"), registry.get_spec("two_heads")])
    with pytest.warns(UserWarning, match=r"needs_gpu \(registered by test_registry\) could not be built.*needs a GPU"):
        assert sorted(catalog.catalog()["models"]) == ["two_heads"]

    def gelu_mlp(input_shape=(4,), activation=keras.activations.gelu):  # pragma: no cover - refused
        return None

    with pytest.raises(ValueError, match=r"must be a JSON value.*Received: activation=<function gelu"):
        zoo.register_model(gelu_mlp)

    def resnet34(input_shape=(28, 28, 1), num_classes=10):  # pragma: no cover - never built
        return None

    zoo.register_model(resnet34, overwrite=True, weights=[WeightSpec("fmnist", "my data", "mine")])
    assert registry.get_spec("resnet34").weight("fmnist").release is None
    assert zoo.list_models("resnet34*", pretrained=True) == []


def test_plugin_package_registers_through_entry_point(tmp_path):
    """A tiny package installed during the test adds a model without touching zoo."""
    package = tmp_path / "plugin_src"
    (package / "zoo_tiny_plugin").mkdir(parents=True)
    (package / "pyproject.toml").write_text(
        textwrap.dedent(
            """
            [build-system]
            requires = ["setuptools>=68"]
            build-backend = "setuptools.build_meta"
            [project]
            name = "zoo-tiny-plugin"
            version = "0.0.1"
            [project.entry-points."zoo.models"]
            tiny = "zoo_tiny_plugin.models"
            """
        )
    )
    (package / "zoo_tiny_plugin" / "__init__.py").write_text("")
    (package / "zoo_tiny_plugin" / "models.py").write_text(
        textwrap.dedent(
            """
            import keras
            import zoo

            @zoo.register_model(head=("predictions",))
            def tiny_mlp(input_shape=(4,), num_classes=3):
                '''A two-layer perceptron from a plugin.'''
                inputs = keras.Input(input_shape)
                x = keras.layers.Dense(8, activation="relu", name="hidden")(inputs)
                outputs = keras.layers.Dense(num_classes, activation="softmax", name="predictions")(x)
                return keras.Model(inputs, outputs, name="tiny_mlp")

            @zoo.register_model(name="resnet18", overwrite=True, head=("predictions",))
            def own_resnet18(input_shape=(4,), num_classes=2):
                '''A plugin's resnet18, replacing the built-in one.'''
                inputs = keras.Input(input_shape)
                return keras.Model(inputs, keras.layers.Dense(num_classes, name="predictions")(inputs))
            """
        )
    )
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--target", str(target), str(package)],
        check=True, capture_output=True,
    )
    out = run_python(
        "import zoo; print(zoo.list_models()); print(zoo.create('tiny_mlp', num_classes=5).output_shape)",
        env={"PYTHONPATH": f"{target}:{ROOT}"},
    )
    assert "'tiny_mlp'" in out and "(None, 5)" in out
    # Imported first, a built-in module registers whole before any plugin replaces one of its models.
    out = run_python(
        "from zoo.models.resnet import build_resnet\n"
        "from zoo.registry import get_spec\n"
        "print(get_spec('resnet18').module, get_spec('resnet34').module)\n"
        "from zoo.catalog import render_catalog\n"
        "try:\n    render_catalog()\nexcept ValueError as error:\n    print(error)\n",
        env={"PYTHONPATH": f"{target}:{ROOT}"},
    )
    assert "zoo_tiny_plugin.models zoo.models.resnet" in out
    # registry.json lists zoo's own models only: with plugins installed it is not generated.
    assert "regenerate it in an environment without them" in out
    assert "['resnet18 (zoo_tiny_plugin.models)', 'tiny_mlp (zoo_tiny_plugin.models)']" in out
