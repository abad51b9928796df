"""Every weight tag's metadata, and every released tag's files, hashes and accuracy.

Like torchvision's weights test: metadata is checked for all tags, released or not; released
tags are loaded (sha256 checked), their architecture compared with the registry, and their
accuracy on the first 1,000 test images compared with the figure recorded at release time.
"""

import re

import keras
import pytest

import zoo
import zoo.training
from zoo.api import resolve_weights
from zoo.format import read_folder
from zoo.registry import all_specs, split_name

TAGS = [(spec.name, tag) for spec in all_specs() for tag in spec.weights]
RELEASED = zoo.list_models(pretrained=True)


@pytest.mark.parametrize("arch, tag", TAGS)
def test_every_weight_tag_has_complete_metadata(arch, tag):
    spec = zoo.registry.get_spec(arch)
    weight = spec.weights[tag]
    config = spec.config_for(tag, {})
    assert len(weight.label_names) == config["num_classes"]
    assert weight.dataset and weight.description and weight.license
    assert weight.preprocessing["input"] and weight.targets
    # The floor below which nothing is released: the target's metrics, never above the target.
    assert weight.release_floor and set(weight.release_floor) <= set(weight.targets)
    assert all(0 < weight.release_floor[key] <= weight.targets[key] for key in weight.release_floor)
    assert weight.train_command.startswith(f"python scripts/train.py {arch}")
    assert re.fullmatch(r"[\w.-]+/[\w.-]+", weight.hub_repo_id)
    assert weight.recipe is not None and weight.recipe.arch == arch  # the tag says how it was trained
    assert zoo.training.get_recipe(f"{arch}.{tag}") is weight.recipe
    if weight.release is not None:
        release = weight.release
        names = {f.name for f in release.files}
        shards = {name for name in names if re.fullmatch(r"model-\d{5}-of-\d{5}\.safetensors", name)}
        assert "config.json" in names
        # One weights file, or shards with their index (scripts/release.py --max-shard-mb).
        assert ("model.safetensors" in names) != bool(shards)
        assert ("model.safetensors.index.json" in names) == bool(shards)
        for record in release.files:
            assert re.fullmatch(r"[0-9a-f]{64}", record.sha256) and record.size > 0
        assert set(weight.targets) <= set(release.metrics)
        assert all(release.metrics[key] >= floor for key, floor in weight.release_floor.items())
        assert release.train_command.startswith("python scripts/train.py")
        assert release.local_dir or (release.hub_repo_id and re.fullmatch(r"[0-9a-f]{40}", release.hub_revision or ""))


@pytest.mark.parametrize("name", RELEASED or [pytest.param("none", marks=pytest.mark.skip(reason="no weights released yet"))])
def test_released_weights_load_and_reproduce_their_numbers(name):
    from zoo.evaluation import evaluate, evaluation_data

    arch, tag = split_name(name)
    if arch == "xception_localizer" and keras.backend.backend() != "tensorflow":
        # CI time: 1,000 96-px canvases cost 60-70 s per suite on a 2-core AVX2 CPU. The localizer's
        # layers are Keras' own plus zoo's head, whose outputs test_models checks under every backend.
        pytest.skip("the localizer's 1,000-canvas check: TensorFlow suite only")
    weight, folder = resolve_weights(name)  # raises on any sha256 mismatch
    config = read_folder(folder)
    spec = zoo.registry.get_spec(arch)
    assert config.architecture == arch
    expected = {k: list(v) if isinstance(v, tuple) else v for k, v in spec.config_for(tag, {}).items()}
    # Builder arguments added after the release (e.g. dtype) hold their defaults in it.
    assert set(config.config) <= set(expected)
    assert {k: config.config.get(k, spec.default_config[k]) for k in expected} == expected
    model = zoo.load(name)
    assert model.count_params() == zoo.info(name)["parameters"]
    x, y = evaluation_data(model, limit=1000)
    measured = evaluate(model, x, y)
    recorded = {k.split("@")[0]: v for k, v in weight.release.metrics.items() if k.endswith("@test[:1000]")}
    assert recorded, f"{name} has no metrics on the 1,000-image slice"
    for key, value in recorded.items():
        assert abs(measured[key] - value) <= 0.01, (key, measured[key], value)
