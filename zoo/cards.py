"""Model cards: ``MODEL_CARDS/<arch>.md`` templates filled with a run's metrics and plots.

Templates use ``string.Template`` placeholders: ``$title``, ``$repo_id``, ``$architecture``,
``$tag``, ``$input_size`` (``HxWxC``), ``$metrics_table``, ``$images``, ``$labels``, ``$usage``,
``$training``, ``$evaluation`` (what the metrics were measured on) and ``$limitations`` (what the
weights were trained on), both from the record. The YAML
front matter is Hub-native, generated with ``huggingface_hub.ModelCardData``: ``library_name:
keras-zoo``, ``tags`` (keras, the task, the dataset), ``datasets`` (Hub dataset ids),
``pipeline_tag``, a ``model-index`` with the measured metrics (``EvalResult``), ``base_model`` for
fine-tuned weights, license.
"""

from __future__ import annotations

import re
import shlex
import string
from pathlib import Path
from typing import Any, Mapping

from zoo.recipe import PIPELINE_TAGS
from zoo.registry import get_spec

CARDS_DIR = Path(__file__).resolve().parent.parent / "MODEL_CARDS"
LIBRARY_NAME = "keras-zoo"
#: zoo dataset names -> (Hub dataset id, readable name).
HUB_DATASETS = {
    "fashion_mnist": ("zalando-datasets/fashion_mnist", "Fashion-MNIST"),
    "fashion_mnist_localization": ("zalando-datasets/fashion_mnist", "Fashion-MNIST localization canvases"),
}
#: Options of a recorded command that name paths of the machine it ran on.
_MACHINE_OPTIONS = ("--output", "--out", "--data-dir", "--data", "-o")
#: Options whose value is left out only when it is a local path (a registered name stays).
_PATH_VALUED_OPTIONS = ("--init-from",)
_GENERIC = """# $title

A `$architecture` model from the keras-zoo.

## Evaluation

$evaluation

$metrics_table

## Usage

$usage

## Training

$training

$images
"""


def _task(fields: Mapping[str, Any]) -> str:
    """The task of a described model: its registered architecture's (classification otherwise)."""
    try:
        return get_spec(fields.get("architecture") or "").task
    except ValueError:
        return "classification"


def template_for(architecture: str | None, cards_dir: Path = CARDS_DIR) -> str:
    """The card template of ``architecture`` from ``MODEL_CARDS/``, else a generic one.

    Example:
        >>> template_for("cnn").splitlines()[0]
        '# $title'
        >>> template_for("no_such_architecture") == template_for(None)
        True
    """
    path = cards_dir / f"{architecture}.md"
    return path.read_text() if architecture and path.exists() else _GENERIC


def metrics_table(metrics: Mapping[str, Any]) -> str:
    """A markdown table of metrics (fractions shown as percentages with two decimals).

    Example:
        >>> print(metrics_table({"accuracy": 0.9123}))
        | metric | value |
        |---|---|
        | accuracy | 91.23% |
    """
    if not metrics:
        return "No evaluation has been recorded for these weights."
    rows = ["| metric | value |", "|---|---|"]
    for key, value in metrics.items():
        if isinstance(value, float) and 0.0 <= value <= 1.0 and "loss" not in key:
            shown = f"{value * 100:.2f}%"
        elif isinstance(value, float):
            shown = f"{value:.4f}"
        else:
            shown = str(value)
        rows.append(f"| {key} | {shown} |")
    return "\n".join(rows)


def public_command(command: str) -> str:
    """A recorded command without the options that name paths of the machine it ran on.

    Example:
        >>> public_command("python scripts/train.py cnn --output /work/x --mixed-precision  # note")
        'python scripts/train.py cnn --mixed-precision  # note'
        >>> "/work" in public_command("python scripts/train.py cnn --output /work/x --notes 'unbalanced")
        False
    """
    code, hash_mark, comment = command.partition("  #")
    try:
        words = shlex.split(code)
    except ValueError:  # unbalanced quotes: filter the plain words, never return the paths as they are
        words = code.split()
    kept, skip = [], False
    for index, word in enumerate(words):
        if skip:
            skip = False
            continue
        following = words[index + 1] if index + 1 < len(words) else ""
        if word in _MACHINE_OPTIONS or (word in _PATH_VALUED_OPTIONS and _is_local_path(following)):
            skip = True
            continue
        option, equals, value = word.partition("=")
        if equals and (option in _MACHINE_OPTIONS or (option in _PATH_VALUED_OPTIONS and _is_local_path(value))):
            continue
        kept.append(word)
    return shlex.join(kept) + (hash_mark + comment if hash_mark else "")


def _is_local_path(value: str) -> bool:
    """A folder or file of this machine, as opposed to a registered name or an ``hf://`` handle."""
    return not value.startswith("hf://") and ("/" in value or value.startswith((".", "~")))


def _model_index_metrics(metrics: Mapping[str, Any]) -> dict[str, float]:
    """The metrics of the full evaluation (keys like ``accuracy@test[:1000]`` left out)."""
    return {k: float(v) for k, v in metrics.items() if re.fullmatch(r"[a-z0-9_]+", k) and isinstance(v, (int, float))}


def card_data(config: Mapping[str, Any], *, repo_id: str | None = None, metrics: Mapping[str, Any] | None = None) -> Any:
    """The card's front matter as ``huggingface_hub.ModelCardData``.

    Example:
        >>> data = card_data({"architecture": "cnn", "tag": "fmnist", "dataset": "fashion_mnist"},
        ...                  metrics={"accuracy": 0.9397})
        >>> data.library_name, data.datasets, data.eval_results[0].metric_value
        ('keras-zoo', ['zalando-datasets/fashion_mnist'], 0.9397)
    """
    from huggingface_hub import EvalResult, ModelCardData

    arch = config.get("architecture") or "model"
    tag = config.get("tag")
    pipeline_tag = PIPELINE_TAGS[_task(config)]
    dataset = config.get("dataset")
    hub_dataset, dataset_name = HUB_DATASETS.get(dataset, (None, dataset))
    scores = _model_index_metrics(dict(metrics if metrics is not None else config.get("metrics") or {}))
    evaluation = config.get("evaluation") or {}
    limit = evaluation.get("limit")
    measured_on = evaluation.get("split") or "test"  # a fine-tune on a picture folder: its validation split
    # A --limit at least as large as the test split (examples < limit) evaluated the whole split.
    split = f"{measured_on}[:{limit}]" if limit and evaluation.get("examples", limit) >= limit else measured_on
    eval_results = [
        EvalResult(task_type=pipeline_tag, dataset_type=hub_dataset or str(dataset), dataset_name=dataset_name or str(dataset),
                   dataset_split=split, metric_type=key, metric_value=round(value, 4))
        for key, value in scores.items()
    ] if dataset and scores else None
    tags = ["keras", LIBRARY_NAME, pipeline_tag, arch]
    if dataset:
        tags.append(dataset.replace("_", "-"))
    return ModelCardData(
        library_name=LIBRARY_NAME,
        license=config.get("license", "apache-2.0"),
        tags=tags,
        datasets=[hub_dataset] if hub_dataset else None,
        metrics=sorted(scores) or None,
        pipeline_tag=pipeline_tag,
        base_model=config.get("base_model_repo") or None,  # a Hub repo id, never a local path
        model_name=repo_id or (f"{arch}.{tag}" if tag else arch) if eval_results else None,
        eval_results=eval_results,
    )


def render_card(
    config: Mapping[str, Any],
    *,
    repo_id: str | None = None,
    metrics: Mapping[str, Any] | None = None,
    folder: Path | None = None,
    training: str | None = None,
) -> str:
    """Render the model card (front matter + body) for a model described by ``config.json``.

    Example:
        >>> card = render_card({"architecture": "cnn", "tag": "fmnist"}, metrics={"accuracy": 0.9})
    """
    arch = config.get("architecture") or "model"
    tag = config.get("tag")
    metrics = dict(metrics or config.get("metrics") or {})
    repo_id = repo_id or config.get("hub_repo_id")
    data = card_data(config, repo_id=repo_id, metrics=metrics)
    images = sorted(p.name for p in folder.glob("*.png")) if folder else []
    # Without a Hub repo or a tag (a fine-tune), the bare name would load zoo's released weights instead.
    handle = f"hf://{repo_id}" if repo_id else f"{arch}.{tag}" if tag else "path/to/this-model-folder"
    body = string.Template(template_for(arch)).safe_substitute(
        title=f"{arch}.{tag}" if tag else arch,
        repo_id=repo_id or "",
        architecture=arch,
        tag=tag or "",
        input_size="x".join(str(n) for n in (config.get("config") or {}).get("input_shape") or ()) or "see config.json",
        metrics_table=metrics_table(metrics),
        evaluation=evaluation_text(config),
        limitations=limitations_text(config),
        images="\n\n".join(f"![{Path(name).stem}]({name})" for name in images),
        labels=", ".join(config.get("label_names") or []),
        usage=_usage(handle),
        training=training or public_command(config.get("train_command") or "") or "See the keras-zoo repository.",
    )
    return f"---\n{data.to_yaml()}\n---\n\n{body.strip()}\n"


def _is_fashion_mnist(dataset: Any) -> bool:
    return dataset is not None and str(dataset).startswith("fashion_mnist")


def _folder_name(config: Mapping[str, Any]) -> str | None:
    """The picture folder a fine-tune trained on (``data.name``), ``None`` for other records."""
    data = config.get("data") or {}
    return (data.get("name") or "its own pictures") if data.get("kind") == "image_folder" else None


def evaluation_text(config: Mapping[str, Any]) -> str:
    """The card's sentence on what the metrics were measured on, from the record's ``evaluation``
    (a fine-tune is measured on its own pictures' validation split, not on Fashion-MNIST's test);
    empty for a record without an evaluation (an untrained model pushed as it is).

    Example:
        >>> evaluation_text({"dataset": "fashion_mnist", "evaluation": {"split": "test", "examples": 10000}})
        'Measured with `zoo eval` on the Fashion-MNIST test split (10,000 images), never used for training or model selection:'
        >>> evaluation_text({"dataset": None, "data": {"kind": "image_folder", "name": "shoes"},
        ...                  "evaluation": {"split": "validation", "examples": 40}})
        "Measured on the validation split of 'shoes' (40 images): held out from training, but it chose the best epoch, so it is no independent test:"
        >>> evaluation_text({"architecture": "cnn"})
        ''
    """
    evaluation = config.get("evaluation")
    if not evaluation:
        return ""
    split = evaluation.get("split") or "test"
    examples = evaluation.get("examples")
    count = f" ({examples:,} images)" if isinstance(examples, int) and not isinstance(examples, bool) else ""
    folder = _folder_name(config)
    dataset = config.get("dataset")
    if folder is None and split == "test" and (dataset is None or _is_fashion_mnist(dataset)):
        return f"Measured with `zoo eval` on the Fashion-MNIST test split{count}, never used for training or model selection:"
    name = folder or dataset or "its own pictures"
    return (f"Measured on the {split} split of {str(name)!r}{count}: held out from training, but it chose the best "
            "epoch, so it is no independent test:" if split == "validation"
            else f"Measured on the {split} split of {str(name)!r}{count}:")


def limitations_text(config: Mapping[str, Any]) -> str:
    """What the weights were trained on, and so what they say nothing about.

    Example:
        >>> limitations_text({"dataset": "fashion_mnist"})[:40]
        'Trained on 28x28 grayscale Fashion-MNIST'
        >>> limitations_text({"architecture": "cnn"})
        'No training data is recorded for these weights.'
    """
    folder = _folder_name(config)
    dataset = config.get("dataset")
    if folder is not None:
        labels = ", ".join(config.get("label_names") or [])
        return (f"Trained on the pictures of {folder!r} only" + (f" (classes: {labels})" if labels else "")
                + ": every picture gets one of these labels, whatever it shows.")
    if _is_fashion_mnist(dataset):
        return "Trained on 28x28 grayscale Fashion-MNIST product photos only; it says nothing useful about other images."
    if dataset is not None:
        return f"Trained on {str(dataset)!r} only; it says nothing useful about other images."
    return "No training data is recorded for these weights."


def _usage(handle: str) -> str:
    return (
        "```bash\n# keras-zoo is not on PyPI yet: install it from a checkout of its source\n"
        "pip install -e \".[tensorflow]\"\n"
        f"zoo predict {handle} my_picture.jpg --top-k 3\n```\n\n"
        f"```python\nimport zoo\n\nmodel = zoo.load({handle!r})\n"
        f"predictions = zoo.predict(model, [\"my_picture.jpg\"], top_k=3)\n```"
    )
