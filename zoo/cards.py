"""Model cards: ``MODEL_CARDS/<arch>.md`` templates filled with a run's metrics and plots.

Templates use ``string.Template`` placeholders: ``$title``, ``$repo_id``, ``$architecture``,
``$tag``, ``$metrics_table``, ``$images``, ``$labels``, ``$usage``, ``$training``. The YAML
front matter (library_name, tags, datasets, metrics, license, pipeline_tag) is generated with
``huggingface_hub.ModelCardData`` so the Hub understands it.
"""

from __future__ import annotations

import string
from pathlib import Path
from typing import Any, Mapping

from zoo.recipe import PIPELINE_TAGS
from zoo.registry import get_spec

CARDS_DIR = Path(__file__).resolve().parent.parent / "MODEL_CARDS"
_GENERIC = """# $title

A `$architecture` model from the keras-zoo.

## Evaluation

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
    """The card template of ``architecture`` from ``MODEL_CARDS/``, else a generic one."""
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
    from huggingface_hub import ModelCardData

    arch = config.get("architecture") or "model"
    tag = config.get("tag")
    metrics = dict(metrics or config.get("metrics") or {})
    dataset = config.get("dataset")
    data = ModelCardData(
        library_name="keras",
        license=config.get("license", "apache-2.0"),
        tags=["keras", "keras-zoo", "image-classification", arch],
        datasets=[dataset.split("_localization")[0]] if dataset else None,
        metrics=sorted(metrics) or None,
        pipeline_tag=PIPELINE_TAGS[_task(config)],
    )
    images = sorted(p.name for p in folder.glob("*.png")) if folder else []
    handle = f"hf://{repo_id}" if repo_id else f"{arch}.{tag}" if tag else arch
    body = string.Template(template_for(arch)).safe_substitute(
        title=f"{arch}.{tag}" if tag else arch,
        repo_id=repo_id or "",
        architecture=arch,
        tag=tag or "",
        metrics_table=metrics_table(metrics),
        images="\n\n".join(f"![{Path(name).stem}]({name})" for name in images),
        labels=", ".join(config.get("label_names") or []),
        usage=f"```python\nimport zoo\n\nmodel = zoo.load({handle!r})\n```",
        training=training or config.get("train_command") or "See the keras-zoo repository.",
    )
    return f"---\n{data.to_yaml()}\n---\n\n{body.strip()}\n"
