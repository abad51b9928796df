"""Releases: stage a run's weights in ``weights/<arch>.<tag>/`` and record them in the registry.

The staging folder holds exactly what gets pushed to the Hub (``config.json``, safetensors
weights, ``README.md`` and its images). The release record ``zoo/released/<arch>.<tag>.json``
carries every file's sha256 and size, the test metrics, the train command and, once
published, the Hub repo and pinned revision. ``registry.json`` is regenerated from both.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

from zoo import hub
from zoo.registry import Release, get_spec, set_release, split_name

ROOT = Path(__file__).resolve().parent.parent
RECORDS_DIR = Path(__file__).resolve().parent / "released"
SLICE_SIZE = 1000
_STAGED = ("config.json", "*.safetensors", "*.safetensors.index.json", "README.md", "*.png")


def record_path(name: str) -> Path:
    """Where the release record of ``arch.tag`` lives."""
    return RECORDS_DIR / f"{name}.json"


def write_record(name: str, release: Release) -> Path:
    """Write the release record of ``name``."""
    path = record_path(name)
    path.write_text(json.dumps(release.to_dict(), indent=2, sort_keys=True) + "\n")
    set_release(name, release)
    return path


def slice_metrics(folder: Path, size: int = SLICE_SIZE, data_dir: str | Path | None = None) -> dict[str, float]:
    """Test metrics on the first ``size`` test images, keyed ``<metric>@test[:size]``.

    CI re-measures these on every released tag (a fast check that the weights still
    reproduce); the full-test figures come from the run's ``metrics.json``.
    """
    from zoo.evaluation import evaluate_name

    measured = evaluate_name(folder, limit=size, data_dir=data_dir)
    return {f"{key}@test[:{size}]": value for key, value in measured.items()}


def stage_release(
    run_dir: str | Path,
    name: str,
    *,
    overwrite: bool = False,
    notes: str = "",
    slice_size: int | None = SLICE_SIZE,
    data_dir: str | Path | None = None,
) -> Release:
    """Copy a run folder's release files to ``weights/<arch>.<tag>/`` and write its record.

    The record holds the run's test metrics plus the same metrics on the first
    ``slice_size`` test images (``None`` skips that evaluation).

    Example:
        >>> stage_release("runs/cnn-0", "cnn.fmnist")
    """
    arch, tag = split_name(name)
    spec = get_spec(name)
    weight = spec.weight(tag)
    if weight is None or tag is None:
        raise ValueError(f"A release needs a registered 'arch.tag' name. Received: name={name!r}")
    run_dir = Path(run_dir)
    config = hub.read_config(run_dir)
    if config.get("architecture") != arch:
        raise ValueError(
            f"The run in {str(run_dir)!r} trained {config.get('architecture')!r}, not {arch!r}. "
            f"Received: name={name!r}"
        )
    target = ROOT / "weights" / name
    if target.exists() and not overwrite:
        raise FileExistsError(f"{str(target)!r} exists; pass overwrite=True to replace that release.")
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    names = []
    for pattern in _STAGED:
        for path in sorted(run_dir.glob(pattern)):
            if path.name == "last.safetensors":
                continue
            shutil.copy2(path, target / path.name)
            names.append(path.name)
    metrics = json.loads((run_dir / "metrics.json").read_text()) if (run_dir / "metrics.json").exists() else {}
    if slice_size:
        metrics.update(slice_metrics(target, slice_size, data_dir=data_dir))
    release = Release(
        files=hub.file_records(target, names),
        metrics=metrics,
        train_command=config.get("train_command", weight.train_command),
        seed=config.get("seed"),
        backend=config.get("backend"),
        trained_on=config.get("trained_on"),
        storage_dtype=config.get("weights", {}).get("storage_dtype", "float32"),
        local_dir=str(target.relative_to(ROOT)),
        notes=notes,
    )
    write_record(name, release)
    return release


def register_publication(name: str, repo_id: str, revision: str) -> Release:
    """Pin the Hub repo and revision of an existing release record.

    Example:
        >>> register_publication("cnn.fmnist", "keras-zoo/cnn.fmnist", "3f1c...")
    """
    path = record_path(name)
    if not path.exists():
        raise ValueError(f"No release record for {name!r}; stage the release first. Received: name={name!r}")
    release = replace(Release.from_dict(json.loads(path.read_text())), hub_repo_id=repo_id, hub_revision=revision)
    write_record(name, release)
    return release


def publish(
    folder: str | Path,
    repo_id: str,
    *,
    register: str | None = None,
    **push_options: Any,
) -> str:
    """Push a run or release folder with :func:`zoo.push`; with ``register``, pin the commit.

    Pinning writes the repo id and commit sha into the tag's release record and regenerates
    ``registry.json``, so ``zoo.load(register)`` pulls exactly that commit from the Hub.

    Example:
        >>> publish("weights/cnn.fmnist", "keras-zoo/cnn.fmnist", register="cnn.fmnist")
    """
    from zoo.catalog import write_catalog

    if register is not None and not record_path(register).exists():
        raise ValueError(
            f"No release record for {register!r}; stage it with scripts/release.py first. "
            f"Received: register={register!r}"
        )
    sha = hub.push(folder, repo_id, **push_options)
    if register is not None:
        register_publication(register, repo_id, sha)
        write_catalog(ROOT / "registry.json")
    return sha
