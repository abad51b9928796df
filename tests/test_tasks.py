"""Tasks (issue 12): each architecture names its task; the task owns losses, metrics and cards."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from conftest import sample_batch, small_overrides

import zoo
import zoo.training
from zoo.cards import render_card
from zoo.recipe import Recipe
from zoo.registry import WeightSpec, _REGISTRY, all_specs, register_model
from zoo.tasks import LocalizationTask, get_task, task_of


@pytest.mark.parametrize("spec", all_specs(), ids=lambda spec: spec.name)
def test_every_architecture_names_its_task_and_builds_the_outputs_it_describes(spec):
    model = zoo.create(spec.name, **small_overrides(spec.name))
    assert task_of(model).name == spec.task
    # What the task says of the outputs holds for the model built: a class softmax (and a box for localization).
    out = model(sample_batch(model, batch=2), training=False)
    outputs = out if isinstance(out, dict) else {"probabilities": out}
    expected = {"class", "box"} if spec.task == "localization" else {"probabilities"}
    assert set(outputs) == expected
    probabilities = keras.ops.convert_to_numpy(outputs["class" if spec.task == "localization" else "probabilities"])
    assert probabilities.shape == (2, model.zoo_config["config"]["num_classes"])
    np.testing.assert_allclose(probabilities.sum(axis=-1), 1.0, rtol=1e-4)  # a softmax over the classes
    if spec.task == "localization":
        assert tuple(outputs["box"].shape) == (2, 4)
    card = render_card({"architecture": spec.name})
    assert f"pipeline_tag: {get_task(spec.task).pipeline_tag}" in card


def test_the_localizer_is_the_localization_task_and_states_its_loss_weights_once():
    assert zoo.registry.get_spec("xception_localizer").task == "localization"
    model = get_task("localization").compile(zoo.create("xception_localizer", input_shape=(71, 71, 1)))
    assert dict(LocalizationTask.loss_weights) == {"class": 0.8, "box": 0.2}
    assert model.get_compile_config()["loss_weights"] == {"class": 0.8, "box": 0.2}
    recipe_weights = zoo.training.get_recipe("xception_localizer").loss_weights
    compiled = get_task("localization").compile(
        zoo.create("xception_localizer", input_shape=(71, 71, 1)), loss_weights=recipe_weights
    )
    assert compiled.get_compile_config()["loss_weights"] == dict(recipe_weights) != {"class": 0.8, "box": 0.2}


def test_metrics_follow_the_task_not_the_outputs():
    boxes = np.array([[0.5, 0.5, 0.2, 0.2], [0.3, 0.3, 0.2, 0.2]], np.float32)
    moved = boxes.copy()
    moved[1] = [0.8, 0.8, 0.2, 0.2]
    metrics = get_task("localization").metrics_from_predictions(
        {"class": np.array([1, 0]), "box": boxes}, {"class": np.array([[0.1, 0.9], [0.2, 0.8]]), "box": moved}
    )
    assert metrics == {"accuracy": 0.5, "class_accuracy": 0.5, "box_iou": 0.5, "iou_50": 0.5}
    assert get_task("classification").metrics_from_predictions(np.array([1, 0]), np.array([[0.1, 0.9], [0.2, 0.8]])) == {
        "accuracy": 0.5
    }


def test_labels_that_do_not_match_the_predictions_are_refused():
    """One-hot labels or labels of another length were broadcast (a numpy error, or, for one label,
    a meaningless accuracy); out-of-range labels were counted in another cell of the confusion matrix."""
    from zoo.metrics import confusion_matrix

    scores = np.array([[0.1, 0.9], [0.2, 0.8]])
    classify = get_task("classification").metrics_from_predictions
    for labels, shape in [(np.array([1]), r"\(1,\)"), (np.eye(2), r"\(2, 2\)"), (np.array([1, 0, 1]), r"\(3,\)")]:
        with pytest.raises(ValueError, match=r"labels of shape \(N,\) and scores of shape \(N, classes\)\. "
                           rf"Received: labels of shape {shape}, scores of shape \(2, 2\)"):
            classify(labels, scores)
    assert classify(np.array([[1], [0]]), scores) == {"accuracy": 0.5}  # a column of labels is one label per image
    boxes = np.array([[0.5, 0.5, 0.2, 0.2], [0.3, 0.3, 0.2, 0.2]], np.float32)
    with pytest.raises(ValueError, match=r"both of shape \(N, 4\)\. Received: boxes of shape \(1, 4\), predicted"):
        get_task("localization").metrics_from_predictions({"class": np.array([1, 0]), "box": boxes[:1]},
                                                          {"class": scores, "box": boxes})
    for truth, predicted, received in [([0], [2], r"y_pred holding \[2\]"), ([0, -1], [0, 1], r"y_true holding \[-1\]")]:
        with pytest.raises(ValueError, match=rf"Labels must be in \[0, 2\) for 2 classes\. Received: {received}"):
            confusion_matrix(np.array(truth), np.array(predicted), num_classes=2)


def test_a_localizer_without_its_record_is_refused_not_scored_as_a_classifier(tmp_path):
    """A localizer saved by Keras (.keras) loses zoo's record: its task is not guessed from its
    outputs, and a classifier's accuracy of a dict of outputs is refused (it was a number)."""
    model = zoo.create("xception_localizer", input_shape=(71, 71, 1))
    model.save(tmp_path / "loc.keras")
    loaded = zoo.load(tmp_path / "loc.keras")
    with pytest.raises(ValueError, match=r"carries no zoo record and has 2 outputs.*Received: outputs="):
        task_of(loaded)
    with pytest.raises(ValueError, match="one array of class scores.*Received: outputs of type dict with keys"):
        get_task("classification").metrics_from_predictions(np.array([0]), {"class": np.ones((1, 10)), "box": np.ones((1, 4))})


@pytest.mark.parametrize("name, shape, expected", [
    ("resnet18", (32, 32, 1), (4, 32, 32, 1)),
    ("resnet18", (28, 28, 3), (4, 28, 28, 3)),
    ("resnet18", (None, None, 1), (4, 28, 28, 1)),
    ("xception_localizer", (71, 71, 3), (4, 71, 71, 3)),
    ("keras_tutorial", (28, 28), (4, 28, 28)),
    ("keras_tutorial", (32, 32), (4, 32, 32)),
    ("xception_localizer", (71, 80, 1), "canvases are square.*Received: input_shape=\\(71, 80, 1\\)"),
    ("xception_localizer", (None, None, 1), "canvases are square.*Received: input_shape=\\(None, None, 1\\)"),
])
def test_evaluation_data_is_shaped_for_the_models_input(name, shape, expected):
    """`zoo eval` of a model of another input size or RGB input: the test images are resized and
    repeated as RGB for it (the localizer's canvases drawn at its size); what cannot be fed is refused."""
    from zoo.evaluation import evaluation_data

    if name == "keras_tutorial":  # Keras' Fashion-MNIST tutorial model: an input without a channel axis
        model = keras.Sequential([keras.Input(shape), keras.layers.Flatten(), keras.layers.Dense(10, activation="softmax")])
    else:
        model = zoo.create(name, input_shape=shape)
    if isinstance(expected, str):
        with pytest.raises(ValueError, match=expected):
            evaluation_data(model, limit=4)
        return
    x, y = evaluation_data(model, limit=4)
    assert x.shape == expected and x.dtype == np.uint8
    assert zoo.evaluation.evaluate(model, x, y)["accuracy"] >= 0
    if expected[-1] == 3:
        np.testing.assert_array_equal(x[..., 0], x[..., 2])


def test_bad_tasks_are_refused(monkeypatch):
    with pytest.raises(ValueError, match="Received: task='segmentation'"):
        get_task("segmentation")
    with pytest.raises(ValueError, match="Received: task='detection'"):
        register_model(lambda input_shape=(4,): None, name="tasktest_a", task="detection")
    monkeypatch.setitem(_REGISTRY, "tasktest_b", None)
    wrong = WeightSpec(tag="x", dataset="d", description="d", recipe=Recipe(arch="tasktest_b", task="localization", pad_crop=0))
    with pytest.raises(ValueError, match="recipe of tasktest_b.x is for task 'localization'"):
        register_model(lambda input_shape=(4,): None, name="tasktest_b", weights=[wrong], overwrite=True)


@pytest.mark.parametrize("task", ["classification", "localization"])
def test_logged_figures_are_what_a_compiled_model_of_the_task_logs(task):
    # zoo.training.run_setup.check_monitor refuses a monitor outside them before a run starts.
    inputs = keras.Input((8, 8, 1))
    features = keras.layers.Flatten()(inputs)
    probs = keras.layers.Dense(3, activation="softmax", name="class")(features)
    x = np.random.default_rng(0).random((8, 8, 8, 1)).astype("float32")
    labels = np.arange(8) % 3
    if task == "localization":
        model = keras.Model(inputs, {"class": probs, "box": keras.layers.Dense(4, activation="sigmoid", name="box")(features)})
        y = {"class": labels, "box": np.full((8, 4), 0.5, "float32")}
    else:
        model, y = keras.Model(inputs, probs), labels
    get_task(task).compile(model)
    history = model.fit(x, y, validation_data=(x, y), epochs=1, batch_size=4, verbose=0).history
    figures = get_task(task).logged_figures
    assert sorted(history) == sorted([*figures, *(f"val_{name}" for name in figures)])
