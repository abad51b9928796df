"""Hub-native model cards (issue 13, item 7), read back with huggingface_hub's own parser."""

from __future__ import annotations

import pytest
from huggingface_hub import ModelCard

from zoo.cards import public_command, render_card
from zoo.format import read_folder

FIELDS = {
    "architecture": "cnn",
    "tag": "fmnist",
    "dataset": "fashion_mnist",
    "label_names": ["T-shirt/top", "Trouser"],
    "train_command": "python scripts/train.py cnn --output /home/me/runs/x --data-dir=/data --mixed-precision",
    "metrics": {"accuracy": 0.9397, "accuracy@test[:1000]": 0.947},
}


def test_front_matter_is_what_the_hub_reads():
    card = ModelCard(render_card(FIELDS, repo_id="keras-zoo/cnn.fmnist"))
    data = card.data
    assert data.library_name == "keras-zoo"
    assert data.pipeline_tag == "image-classification"
    assert data.datasets == ["zalando-datasets/fashion_mnist"]
    assert {"keras", "image-classification", "fashion-mnist"} <= set(data.tags)
    [result] = data.eval_results  # the @subset metric is not a model-index result
    assert (result.task_type, result.dataset_type, result.dataset_split) == (
        "image-classification", "zalando-datasets/fashion_mnist", "test")
    assert (result.metric_type, result.metric_value) == ("accuracy", 0.9397)
    assert data.model_name == "keras-zoo/cnn.fmnist"
    assert 'zoo.load(\'hf://keras-zoo/cnn.fmnist\')' in card.text
    assert "pip install keras-zoo" not in card.text  # not on PyPI: the usage installs from a checkout
    assert 'pip install -e ".[tensorflow]"' in card.text
    assert "/home/me" not in card.content and "/data" not in card.content
    assert data.base_model is None


def test_a_fine_tune_names_its_base_model_and_a_subset_evaluation_its_split():
    fields = {**FIELDS, "base_model": "cnn.fmnist", "base_model_repo": "keras-zoo/cnn.fmnist",
              "evaluation": {"limit": 2000}}
    data = ModelCard(render_card(fields)).data
    assert data.base_model == "keras-zoo/cnn.fmnist"
    assert data.eval_results[0].dataset_split == "test[:2000]"
    whole = {**fields, "evaluation": {"limit": 14000, "examples": 10000}}  # a limit beyond the test split
    assert ModelCard(render_card(whole)).data.eval_results[0].dataset_split == "test"
    assert ModelCard(render_card({**whole, "evaluation": {"limit": 500, "examples": 500}})).data.eval_results[0].dataset_split == "test[:500]"
    local = {**FIELDS, "base_model": "/home/me/runs/cnn-0", "base_model_repo": None}
    card = render_card(local)
    assert ModelCard(card).data.base_model is None and "/home/me" not in card


def test_a_fine_tunes_card_says_what_it_was_measured_on_and_how_to_load_it():
    """A fine-tune on a picture folder is measured on that folder's validation split: its card
    says so (not "the Fashion-MNIST test split (10,000 images)"), the Hub reads that split, and
    its usage does not load zoo's released cnn; a --limit run states the images it was measured on."""
    fields = {"architecture": "cnn", "tag": None, "dataset": None, "label_names": ["boot", "sandal"],  # as finetune writes it
              "data": {"kind": "image_folder", "name": "shoes"}, "evaluation": {"split": "validation", "examples": 7},
              "metrics": {"accuracy": 0.857}}
    card = ModelCard(render_card(fields))
    assert "validation split of 'shoes' (7 images)" in card.text and "Fashion-MNIST" not in card.text
    assert "Trained on the pictures of 'shoes' only (classes: boot, sandal)" in card.text
    assert "zoo.load('cnn')" not in card.text and "zoo predict cnn " not in card.text
    named = ModelCard(render_card({**fields, "dataset": "shoes"})).data  # a record naming its dataset: the Hub reads the split
    assert named.eval_results[0].dataset_split == "validation"
    limited = render_card({**FIELDS, "evaluation": {"split": "test", "examples": 256, "limit": 256}})
    assert "Fashion-MNIST test split (256 images)" in limited and "10,000" not in limited


def test_an_untrained_models_card_claims_no_evaluation_or_training_data(tmp_path):
    """zoo.push(model) of a model with no record (untrained, 3 classes): its card says nothing of a
    Fashion-MNIST evaluation or training it never had."""
    card = render_card({"architecture": "cnn", "config": {"num_classes": 3}})
    assert "Fashion-MNIST" not in card and "Measured" not in card
    assert "No training data is recorded for these weights." in card
    assert "Measured" not in render_card({"architecture": "no_such_architecture"})


def test_the_localizer_card_is_object_detection_with_both_metrics():
    fields = {"architecture": "xception_localizer", "tag": "fmnist-loc", "dataset": "fashion_mnist_localization",
              "metrics": {"accuracy": 0.9, "box_iou": 0.8, "iou_50": 0.95}, "config": {"input_shape": [72, 72, 1]}}
    card = render_card(fields)
    data = ModelCard(card).data
    assert data.pipeline_tag == "object-detection"
    assert "Input: 72x72x1 raw" in card and "$input_size" not in card  # the input size of the weights
    assert {r.metric_type: r.metric_value for r in data.eval_results} == {"accuracy": 0.9, "box_iou": 0.8, "iou_50": 0.95}


def test_an_unknown_dataset_gives_no_dataset_id_but_keeps_the_results():
    data = ModelCard(render_card({"architecture": "cnn", "dataset": "my_photos", "metrics": {"accuracy": 0.5}})).data
    assert data.datasets is None
    assert data.eval_results[0].dataset_name == "my_photos"


@pytest.mark.parametrize(
    "command, expected",
    [
        ("python scripts/train.py cnn --output runs/x", "python scripts/train.py cnn"),
        ("python scripts/train.py cnn --out=/tmp/x --epochs 3", "python scripts/train.py cnn --epochs 3"),
        ("zoo export cnn --format onnx -o /tmp/m.onnx", "zoo export cnn --format onnx"),
        ("zoo train cnn --data /home/me/photos --init-from runs/cnn-0", "zoo train cnn"),
        ("zoo train cnn --data=photos --init-from cnn.fmnist", "zoo train cnn --init-from cnn.fmnist"),
        ("zoo train cnn --init-from=hf://me/cnn@v1", "zoo train cnn --init-from=hf://me/cnn@v1"),
    ],
)
def test_recorded_commands_leave_out_machine_paths(command, expected):
    assert public_command(command) == expected


def test_the_released_card_parses_and_records_no_machine_path():
    folder = read_folder("weights/cnn.fmnist")
    card = ModelCard((folder.path / "README.md").read_text())
    assert card.data.library_name == "keras-zoo"
    assert card.data.eval_results[0].metric_value == folder.fields["metrics"]["accuracy"]
    assert "--output" not in card.content
