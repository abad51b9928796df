"""What ``zoo list`` and ``zoo info`` show, answered from ``registry.json`` without Keras.

The packaged ``zoo/registry.json`` (generated from code, checked fresh by the tests) holds every
built-in architecture and weight tag: parameters, input, task, measured metrics, whether the
weights exist. Reading it takes milliseconds, where building the registry imports Keras and a
backend (seconds). When another package adds models through the ``zoo.models`` entry points,
the catalog is built live from the registry instead (slower, but complete).

Example:
    >>> [row.name for row in model_rows("resnet*")]
    ['resnet18', 'resnet34']
"""

from __future__ import annotations

import fnmatch
import importlib.metadata
import importlib.resources
import json
import re
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

__all__ = [
    "ModelRow", "catalog_models", "format_info", "format_table", "headline_metric", "model_rows", "name_patterns",
    "names_tags", "plugin_entry_points", "tag_entry",
]

ENTRY_POINT_GROUP = "zoo.models"


def plugin_entry_points() -> tuple[importlib.metadata.EntryPoint, ...]:
    """The installed ``zoo.models`` entry points: other packages' models (the one place that asks).

    Example:
        >>> plugin_entry_points()  # nothing installed here
        ()
    """
    return tuple(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP))


def _natural_key(text: str) -> list[Any]:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


def catalog_models() -> dict[str, Any]:
    """Every model of the catalog: the packaged ``registry.json``, or the live registry when
    plugins are installed.

    Example:
        >>> catalog_models()["cnn"]["task"]
        'classification'
    """
    if plugin_entry_points():
        from zoo.catalog import catalog  # imports Keras and every plugin

        return catalog()["models"]
    text = importlib.resources.files("zoo").joinpath("registry.json").read_text()
    return json.loads(text)["models"]


def headline_metric(metrics: Mapping[str, Any]) -> str:
    """The one metric a listing shows: accuracy (and box IoU for a localizer).

    Example:
        >>> headline_metric({"accuracy": 0.9397, "accuracy@test[:1000]": 0.947})
        'acc 93.97%'
    """
    parts = []
    if "accuracy" in metrics:
        parts.append(f"acc {metrics['accuracy'] * 100:.2f}%")
    if "box_iou" in metrics:
        parts.append(f"IoU {metrics['box_iou']:.3f}")
    return ", ".join(parts) or "-"


@dataclass(frozen=True)
class ModelRow:
    """One line of ``zoo list``."""

    name: str
    parameters: int
    input: str
    task: str
    metric: str
    weights: str


def tag_entry(entry: Mapping[str, Any], tag: str | None) -> dict[str, Any]:
    """A catalog entry as ``arch.tag`` builds it: the tag's own ``build`` (config, input, outputs,
    parameters) over the architecture's, which describe the default tag.

    Example:
        >>> tag_entry(catalog_models()["cnn"], "fmnist")["parameters"]
        1036490
    """
    weight = (entry.get("weights") or {}).get(tag) or {}
    return {**entry, **(weight.get("build") or {})}


def _input_text(entry: Mapping[str, Any], overrides: Mapping[str, Any]) -> str:
    shape = overrides.get("input_shape") or entry["config"].get("input_shape") or entry["input_spec"]["shape"][1:]
    return "x".join("?" if d is None else str(d) for d in shape)


def model_rows(pattern: str | Iterable[str] = "*", pretrained: bool = False) -> list[ModelRow]:
    """Rows for the names matching ``pattern`` as :func:`zoo.list_models` matches them: an
    architecture per pattern without a dot, an ``arch.tag`` (released or planned) per pattern
    with one, and with ``pretrained`` the released ``arch.tag`` only; naturally sorted.

    Example:
        >>> [row.name for row in model_rows(pretrained=True)][:1]
        ['cnn.fmnist']
    """
    patterns = name_patterns(pattern)
    arch_patterns = [] if pretrained else [p for p in patterns if not names_tags([p])]
    tag_patterns = patterns if pretrained else [p for p in patterns if names_tags([p])]
    rows = []
    for arch, entry in catalog_models().items():
        tags = entry.get("weights") or {}
        for tag, weight in tags.items():
            name = f"{arch}.{tag}"
            if (pretrained and not weight.get("available")) or not _matches(name, tag_patterns, by_arch=pretrained):
                continue
            metrics = (weight.get("release") or {}).get("metrics") or {}
            built = tag_entry(entry, tag)
            rows.append(ModelRow(name, built["parameters"], _input_text(built, weight.get("overrides") or {}),
                                 entry.get("task", "classification"), headline_metric(metrics),
                                 "yes" if weight.get("available") else "planned"))
        if not _matches(arch, arch_patterns, by_arch=False):
            continue
        default = tags.get(entry.get("default_tag") or "", {})
        metrics = (default.get("release") or {}).get("metrics") or {}
        released = [tag for tag, weight in tags.items() if weight.get("available")]
        planned = [tag for tag, weight in tags.items() if not weight.get("available")]
        weights = ", ".join([*released, *(f"{t} (planned)" for t in planned)]) or "-"
        rows.append(ModelRow(arch, entry["parameters"], _input_text(entry, {}), entry.get("task", "classification"),
                             headline_metric(metrics), weights))
    return sorted(rows, key=lambda row: _natural_key(row.name))


def name_patterns(pattern: str | Iterable[str]) -> list[str]:
    """``pattern`` (one fnmatch pattern or several) as a list, checked to be strings; an empty
    pattern matches every name, as timm's ``list_models("")`` does.

    Example:
        >>> name_patterns("resnet*"), name_patterns(["cnn", "res*"]), name_patterns("")
        (['resnet*'], ['cnn', 'res*'], ['*'])
    """
    patterns = [pattern] if isinstance(pattern, str) else list(pattern) if isinstance(pattern, Iterable) else None
    if patterns is None or not all(isinstance(p, str) for p in patterns):
        raise ValueError(
            "A model name pattern is a string with fnmatch wildcards (e.g. 'resnet*') or a list of them. "
            f"Received: pattern={pattern!r}"
        )
    return [p or "*" for p in patterns]


def names_tags(patterns: Iterable[str]) -> bool:
    """Whether a pattern names weight tags (``arch.tag``, ``*.fmnist``): then tags are listed, not
    architectures, the released and the planned ones (``pretrained`` keeps the released).

    Example:
        >>> names_tags(["resnet*"]), names_tags(["*.fmnist"])
        (False, True)
    """
    return any("." in pattern for pattern in patterns)


def _matches(name: str, patterns: list[str], *, by_arch: bool) -> bool:
    """Whether a pattern matches ``name`` (or, ``by_arch``, the architecture of an ``arch.tag``)."""
    return any(fnmatch.fnmatchcase(name, p) or (by_arch and fnmatch.fnmatchcase(name.split(".")[0], p)) for p in patterns)


def format_table(rows: list[ModelRow]) -> str:
    """A plain-text table of ``rows``, one header line then one line per model.

    Example:
        >>> print(format_table([ModelRow("cnn", 1036490, "28x28x1", "classification", "acc 93.97%", "fmnist")]))
        name  params  input    task            metric      weights
        cnn   1.04M   28x28x1  classification  acc 93.97%  fmnist
    """
    header = ("name", "params", "input", "task", "metric", "weights")
    lines = [header] + [(r.name, f"{r.parameters / 1e6:.2f}M", r.input, r.task, r.metric, r.weights) for r in rows]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip() for line in lines)


def format_info(name: str, entry: Mapping[str, Any]) -> str:
    """A readable description of one catalog entry (``zoo info NAME``).

    Example:
        >>> print(format_info("cnn", catalog_models()["cnn"]).splitlines()[0])
        cnn: The tutorial CNN: Conv64(7x7) - pool - Conv128 - Conv128 - pool - Dense128 - Dense64 - softmax.
    """
    arch, _, tag = name.partition(".")
    lines = [f"{arch}: {entry['description']}",
             f"  task: {entry.get('task', 'classification')}    parameters: {entry['parameters']:,}",
             f"  input: {_input_text(entry, {})} raw pixels in [0, 255]    module: {entry['module']}",
             f"  config: {json.dumps(entry['config'])}"]
    for weight_tag, weight in (entry.get("weights") or {}).items():
        if tag and weight_tag != tag:
            continue
        release = weight.get("release") or {}
        state = "released" if weight.get("available") else "planned (no weights yet)"
        lines.append(f"  {arch}.{weight_tag}: {state} -- {weight.get('description', '')}")
        floor = f"    release floor: {weight['release_floor']}" if weight.get("release_floor") else ""
        if release.get("metrics"):
            lines.append(f"    measured: {headline_metric(release['metrics'])}    targets: {weight.get('targets') or '-'}{floor}")
        elif weight.get("targets"):
            lines.append(f"    targets: {weight['targets']}{floor}")
        if weight.get("label_names"):
            lines.append(f"    labels: {', '.join(weight['label_names'])}")
        repo = weight.get("hub_repo_id")
        if release.get("hub_revision"):  # published: the pinned commit zoo.load pulls
            hub = f"{release.get('hub_repo_id') or repo}@{release['hub_revision'][:12]}"
        elif repo and release.get("local_dir"):
            hub = f"{repo} (not published yet: loads from a checkout's {release['local_dir']}/)"
        else:
            hub = f"{repo} (planned)" if repo else ""
        command = release.get("train_command") or weight.get("train_command", "")  # what trained these weights
        if hub or command:
            lines.append(f"    hub: {hub or '-'}    train: {command}")
    return "\n".join(lines)
