"""Export a zoo model to ONNX, LiteRT or a TensorFlow SavedModel, checked against Keras.

:func:`export_model` loads any handle (``zoo.api.resolve``), exports it through Keras'
``model.export`` under the TensorFlow backend (ONNX through tf2onnx, LiteRT through
TensorFlow's converter; in a ``KERAS_BACKEND=tensorflow`` subprocess when this process runs
another backend, so the file does not depend on the caller's backend), runs the file with the
runtime that serves it (onnxruntime, ai-edge-litert, ``tf.saved_model``) on test images and
compares every output with Keras'. Above ``tolerance`` the export is refused and nothing is
left on disk. Beside the file, ``<path>.json`` records the label names, preprocessing, input
and output specs, the source and the sha256 of its weights, versions and the measured
difference. The file is written under a temporary name in the same folder and renamed into
place; an existing path is replaced only with ``overwrite=True``.

Example:
    >>> result = export_model("cnn", "onnx", "exported/cnn.onnx")  # doctest: +SKIP
    >>> result.max_abs_diff < result.tolerance, result.sidecar.name  # doctest: +SKIP
    (True, 'cnn.onnx.json')
"""

from __future__ import annotations

import importlib
import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import keras

from zoo import weights as weights_io
from zoo._version import __version__
from zoo.api import Resolved, load_resolved, resolve
from zoo.export_check import (
    INSTALL_HINT,
    RUNNERS,
    RUNTIMES,
    MissingExportPackageError,
    OutputDiff,
    check_images,
    compare,
    missing_packages,
    output_tensors,
    reference_outputs,
)
from zoo.atomic import atomic_write_text, fsync_dir, temporary_name
from zoo.format import sha256_of
from zoo.preprocess import preprocessing_of
from zoo.registry import get_spec

__all__ = [
    "DEFAULT_NUM_CHECK_IMAGES",
    "DEFAULT_TOLERANCE",
    "FORMATS",
    "ExportMismatchError",
    "ExportResult",
    "MissingExportPackageError",
    "export_model",
    "sidecar_path",
]

#: Accepted formats -> Keras' ``model.export`` format.
FORMATS: dict[str, str] = {"onnx": "onnx", "litert": "litert", "saved_model": "tf_saved_model"}
#: The largest absolute difference from Keras accepted by default (timm checks ONNX exports to
#: 3 decimals too). Zoo models output probabilities and boxes in [0, 1]; measured here: cnn.fmnist
#: 2.4e-7 (ONNX), 1.8e-7 (LiteRT), 0 (SavedModel); an untrained resnet34 1.3e-5 and 3.6e-5. A
#: broken export (wrong weights, layout or preprocessing) is off by 1e-2 or more.
DEFAULT_TOLERANCE = 1e-3
DEFAULT_NUM_CHECK_IMAGES = 16
SIDECAR_FORMAT = "keras-zoo-export"
SIDECAR_VERSION = 1
#: The packages whose versions the sidecar records, per format.
_VERSIONED = {
    "onnx": ("keras", "tensorflow", "tf2onnx", "onnx", "onnxruntime"),
    "litert": ("keras", "tensorflow", "ai-edge-litert"),
    "saved_model": ("keras", "tensorflow"),
}


class ExportMismatchError(RuntimeError):
    """The exported file's outputs differ from Keras' by more than the tolerance."""


@dataclass(frozen=True)
class ExportResult:
    """A checked export: the file, its sidecar JSON and the measured difference from Keras.

    ``diffs`` holds the largest absolute difference of each output (``probabilities``; ``class``
    and ``box`` for the localizer), ``max_abs_diff`` the largest of them, measured on
    ``num_images`` images described by ``images``.
    """

    path: Path
    format: str
    sidecar: Path
    max_abs_diff: float
    diffs: Mapping[str, float]
    tolerance: float
    num_images: int
    images: str
    handle: str
    sidecar_data: Mapping[str, Any] = field(default_factory=dict, repr=False)

    def describe(self) -> str:
        """One line for a command line: where, which format, the largest difference.

        Example:
            >>> ExportResult(Path("m.onnx"), "onnx", Path("m.onnx.json"), 2.4e-07, {"probabilities": 2.4e-07},
            ...              1e-3, 16, "Fashion-MNIST test[:16]", "cnn").describe()
            "Exported 'cnn' to m.onnx (onnx); largest difference from Keras on 16 images (Fashion-MNIST test[:16]): 2.4e-07 (tolerance 0.001); sidecar m.onnx.json"
        """
        return (
            f"Exported {self.handle!r} to {self.path} ({self.format}); largest difference from Keras on "
            f"{self.num_images} images ({self.images}): {self.max_abs_diff:.2g} (tolerance {self.tolerance:g}); "
            f"sidecar {self.sidecar}"
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form (paths as strings); :meth:`from_dict` reads it back."""
        return {
            "path": str(self.path), "format": self.format, "sidecar": str(self.sidecar),
            "max_abs_diff": self.max_abs_diff, "diffs": dict(self.diffs), "tolerance": self.tolerance,
            "num_images": self.num_images, "images": self.images, "handle": self.handle,
            "sidecar_data": dict(self.sidecar_data),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ExportResult":
        """The result :meth:`to_dict` wrote."""
        return cls(**{**data, "path": Path(data["path"]), "sidecar": Path(data["sidecar"])})


def sidecar_path(path: str | os.PathLike) -> Path:
    """The JSON file beside an exported file or folder: ``<path>.json``.

    Example:
        >>> sidecar_path("exported/cnn.onnx").as_posix()
        'exported/cnn.onnx.json'
    """
    path = Path(path)
    return path.with_name(path.name + ".json")


def export_model(
    handle: str | os.PathLike,
    format: str,
    path: str | os.PathLike,
    *,
    weights: str | os.PathLike | None = "default",
    overwrite: bool = False,
    tolerance: float = DEFAULT_TOLERANCE,
    num_check_images: int = DEFAULT_NUM_CHECK_IMAGES,
) -> ExportResult:
    """Export the model of ``handle`` to ``path`` as ``format``, checked against Keras.

    ``handle`` is anything ``zoo.load`` takes but a ``.keras`` file (``"cnn"``,
    ``"hf://namespace/name@rev"``, a zoo folder: save a ``.keras`` model as one first) and
    ``weights`` means what it means there (``None``: untrained). ``format`` is ``"onnx"``,
    ``"litert"`` (``path`` ends in ``.tflite``) or ``"saved_model"`` (a folder). The export runs
    under Keras' TensorFlow backend, in a subprocess when this process runs another one, in float32.
    The file is then run by onnxruntime, ai-edge-litert or ``tf.saved_model.load`` on
    ``num_check_images`` test images and every output compared with Keras'; above ``tolerance``
    (largest absolute difference) it is deleted and :class:`ExportMismatchError` names the measured
    difference. ``<path>.json`` beside it records label names, preprocessing, input/output specs,
    the source handle, the sha256 of its weight files, versions and the difference.

    Raises ``ValueError`` (unknown format, bad arguments), ``FileExistsError`` (``path`` or its
    sidecar exists and ``overwrite`` is false), :class:`MissingExportPackageError` (an
    ``ImportError``: a package of the ``export`` extra is missing) and
    :class:`ExportMismatchError`.

    Example:
        >>> result = export_model("cnn", "litert", "exported/cnn.tflite")  # doctest: +SKIP
        >>> print(result.describe())  # doctest: +SKIP
        Exported 'cnn' to exported/cnn.tflite (litert); largest difference from Keras on 16 images (Fashion-MNIST test[:16]): 2.4e-07 (tolerance 0.001); sidecar exported/cnn.tflite.json
    """
    request = _check_request(handle, format, path, weights, overwrite, tolerance, num_check_images)
    missing = missing_packages(request["format"])
    if missing:
        raise MissingExportPackageError(
            f"Exporting to {request['format']!r} needs the package(s) {missing}, which are not installed. "
            f"Install them with: {INSTALL_HINT}",
            name=missing[0],
        )
    if keras.backend.backend() == "tensorflow":
        return _export(request)
    return _export_in_subprocess(request)


def _check_request(
    handle: Any, format: Any, path: Any, weights: Any, overwrite: bool, tolerance: Any, num_check_images: Any
) -> dict[str, Any]:
    """Validate the arguments before anything is loaded; returns the JSON-ready request."""
    if not isinstance(format, str) or format not in FORMATS:
        raise ValueError(f"Unknown export format. Accepted: {sorted(FORMATS)}. Received: format={format!r}")
    if isinstance(tolerance, bool) or not isinstance(tolerance, (int, float)) or not tolerance >= 0:
        raise ValueError(f"`tolerance` must be a number >= 0. Received: tolerance={tolerance!r}")
    if isinstance(num_check_images, bool) or not isinstance(num_check_images, int) or num_check_images < 1:
        raise ValueError(f"`num_check_images` must be an int >= 1. Received: num_check_images={num_check_images!r}")
    if not isinstance(handle, (str, os.PathLike)):
        raise ValueError(f"A model handle is a name, 'hf://...' or a folder. Received: {handle!r}")
    path = Path(path).expanduser()
    if format == "litert" and path.suffix != ".tflite":
        raise ValueError(f"A LiteRT file's name ends in '.tflite'. Received: path={str(path)!r}")
    if format == "saved_model":
        if path.is_dir() and any(path.iterdir()) and not (path / "saved_model.pb").is_file():
            raise ValueError(
                f"{str(path)!r} is a folder that holds no SavedModel; it is never replaced. Name a new folder."
            )
    elif path.is_dir():
        raise ValueError(f"{str(path)!r} is a folder; name the file to write, e.g. {str(path / ('model.' + _suffix(format)))!r}.")
    for existing in (path, sidecar_path(path)):
        if (existing.exists() or existing.is_symlink()) and not overwrite:
            raise FileExistsError(
                f"{str(existing)!r} exists; pass overwrite=True (--overwrite) to replace it."
            )
    weights_arg = weights if weights is None or isinstance(weights, str) else os.fspath(weights)
    return {
        "handle": os.fspath(handle), "format": format, "path": str(path), "weights": weights_arg,
        "overwrite": bool(overwrite), "tolerance": float(tolerance), "num_check_images": num_check_images,
    }


def _suffix(format: str) -> str:
    return {"onnx": "onnx", "litert": "tflite"}.get(format, "")


def _load(handle: str, weights: str | None) -> tuple[keras.Model, Resolved]:
    """Load the model of ``handle`` as ``zoo.load`` does, in float32 (what ONNX and LiteRT export expects)."""
    resolved = resolve(handle, weights)
    spec = get_spec(resolved.name) if resolved.name else None
    overrides = {"dtype": "float32"} if spec is not None and "dtype" in spec.default_config else {}
    return load_resolved(resolved, **overrides), resolved


def _describe_source(handle: str, model: keras.Model, resolved: Resolved) -> dict[str, Any]:
    """Label names, preprocessing (complete, as ``zoo.predict`` applies it) and the source (handle,
    architecture, weights' sha256): what ``zoo.load`` knows about the loaded weights."""
    metadata = getattr(model, "zoo_metadata", None) or {}
    files = weights_io.weight_files(resolved.weights) if resolved.weights is not None else []
    zoo_config = getattr(model, "zoo_config", None) or {}
    return {
        "label_names": list(metadata.get("label_names") or []),
        "preprocessing": json.loads(json.dumps(preprocessing_of(metadata) if metadata else {}, default=str)),
        "source": {
            "handle": handle,
            "name": resolved.name,
            "architecture": zoo_config.get("architecture"),
            "tag": zoo_config.get("tag"),
            "config": json.loads(json.dumps(zoo_config.get("config") or {}, default=str)),
            "weights_sha256": {f.name: sha256_of(f) for f in files},
        },
    }


def _versions(format: str) -> dict[str, str]:
    found = {"keras-zoo": __version__}
    for name in _VERSIONED[format]:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    return found


def _spec_of(tensor: Any, name: str) -> dict[str, Any]:
    return {"name": name, "shape": [None, *tensor.shape[1:]], "dtype": str(tensor.dtype)}


def _export(request: Mapping[str, Any]) -> ExportResult:
    """Load, export, run, compare, then move into place and write the sidecar (TensorFlow backend)."""
    if keras.backend.backend() != "tensorflow":
        raise RuntimeError(f"The export runs under the TensorFlow backend; this is {keras.backend.backend()!r}.")
    handle, format, path = request["handle"], request["format"], Path(request["path"])
    model, resolved = _load(handle, request["weights"])
    images, images_note = check_images(model, request["num_check_images"])
    created = [p for p in (path.parent, *path.parent.parents) if not p.exists()]
    path.parent.mkdir(parents=True, exist_ok=True)
    work = temporary_name(path)  # a hidden folder beside the target, same filesystem
    work.mkdir()
    try:
        exported = work / path.name  # the target's own name: LiteRT files must end in .tflite
        diffs = _export_and_compare(model, format, exported, images, request["tolerance"], f"{handle!r}")
        data = _sidecar_data(handle, format, path, model, resolved, diffs, images_note, len(images), request["tolerance"])
        _move_into_place(exported, path, request["overwrite"])
    except BaseException:
        _remove(work)
        for folder in created:  # the folders made for the file, when nothing else came into them
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
        raise
    _remove(work)
    sidecar = sidecar_path(path)
    atomic_write_text(sidecar, json.dumps(data, indent=2) + "\n")
    check = data["check"]
    return ExportResult(
        path=path, format=format, sidecar=sidecar, max_abs_diff=check["max_abs_diff"],
        diffs=check["max_abs_diff_per_output"], tolerance=request["tolerance"], num_images=len(images),
        images=images_note, handle=handle, sidecar_data=data,
    )


def _export_and_compare(
    model: keras.Model, format: str, temporary: Path, images: Any, tolerance: float, what: str
) -> dict[str, OutputDiff]:
    """``model.export`` to ``temporary``, run it, compare with Keras; refuse it above ``tolerance``."""
    reference = reference_outputs(model, images)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # tf2onnx's numpy 2 shims in Keras
        model.export(str(temporary), format=FORMATS[format], verbose=False)
    diffs = compare(reference, RUNNERS[format](str(temporary), images))
    worst = max(d.max_abs_diff for d in diffs.values())
    if not worst <= tolerance:
        per_output = ", ".join(f"{name}: {d.max_abs_diff:.3g}" for name, d in diffs.items())
        raise ExportMismatchError(
            f"The {format} export of {what} differs from Keras by {worst:.3g} (largest absolute difference "
            f"on {len(images)} images: {per_output}), above the tolerance {tolerance:g}. It was not kept."
        )
    return diffs


def _sidecar_data(
    handle: str, format: str, path: Path, model: keras.Model, resolved: Resolved,
    diffs: Mapping[str, OutputDiff], images_note: str, num_images: int, tolerance: float,
) -> dict[str, Any]:
    """What ``<path>.json`` records about the export."""
    outputs = output_tensors(model)
    return {
        "format": SIDECAR_FORMAT,
        "format_version": SIDECAR_VERSION,
        "export_format": format,
        "file": path.name,
        **_describe_source(handle, model, resolved),
        "inputs": [_spec_of(t, t.name) for t in model.inputs],
        "outputs": [{**_spec_of(outputs[name], name), "exported_name": d.artefact_name} for name, d in diffs.items()],
        "check": {
            "runtime": RUNTIMES[format],
            "images": images_note,
            "num_images": num_images,
            "max_abs_diff": max(d.max_abs_diff for d in diffs.values()),
            "max_abs_diff_per_output": {name: d.max_abs_diff for name, d in diffs.items()},
            "tolerance": tolerance,
        },
        "versions": _versions(format),
    }


def _move_into_place(exported: Path, path: Path, overwrite: bool) -> None:
    """Rename ``exported`` to ``path``; an existing ``path`` is moved aside first, removed after."""
    exists = path.exists() or path.is_symlink()
    if exists and not overwrite:
        raise FileExistsError(f"{str(path)!r} exists; pass overwrite=True (--overwrite) to replace it.")
    if not exists:
        os.rename(exported, path)
        fsync_dir(path.parent)
        return
    aside = temporary_name(path)
    os.rename(path, aside)
    try:
        os.rename(exported, path)
    except BaseException:
        os.rename(aside, path)
        raise
    fsync_dir(path.parent)
    _remove(aside)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def _reported_error(report: Mapping[str, Any]) -> BaseException:
    """The subprocess's error as the caller would have got it in process.

    ``report["classes"]`` is the error's class and its bases (``module:qualname``, most derived
    first); the first one that is zoo's own or a builtin and takes the message is used, so a
    ``WeightsMismatchError`` stays one and a foreign error (TensorFlow's) becomes its nearest
    builtin base. ``RuntimeError`` when none fits (a bare ``Exception``).

    Example:
        >>> _reported_error({"classes": ["zoo.weights:WeightsMismatchError", "builtins:ValueError"], "message": "m"})
        WeightsMismatchError('m')
        >>> _reported_error({"classes": ["tensorflow.errors:InvalidArgumentError", "builtins:Exception"], "message": "m"})
        RuntimeError('The TensorFlow export subprocess failed: tensorflow.errors:InvalidArgumentError: m')
    """
    message = report["message"]
    for name in report.get("classes", ()):
        module_name, _, qualname = name.partition(":")
        if module_name not in ("builtins", "zoo") and not module_name.startswith("zoo."):
            continue
        if module_name == "builtins" and qualname in ("Exception", "BaseException"):
            break
        try:
            cls: Any = importlib.import_module(module_name)
            for part in qualname.split("."):
                cls = getattr(cls, part)
            if isinstance(cls, type) and issubclass(cls, Exception):
                return cls(message)
        except (ImportError, AttributeError, TypeError):
            continue
    first = (report.get("classes") or ["?"])[0]
    return RuntimeError(f"The TensorFlow export subprocess failed: {first}: {message}")


_WORKER = "import sys; from zoo.export import _worker; sys.exit(_worker(sys.argv[1], sys.argv[2]))"


def _export_in_subprocess(request: Mapping[str, Any]) -> ExportResult:
    """Run :func:`_export` in a ``KERAS_BACKEND=tensorflow`` interpreter; raise its error here."""
    package_root = str(Path(__file__).resolve().parent.parent)
    env = {**os.environ, "KERAS_BACKEND": "tensorflow"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with tempfile.TemporaryDirectory(prefix="zoo-export-") as folder:
        answer = Path(folder) / "result.json"
        done = subprocess.run(
            [sys.executable, "-c", _WORKER, json.dumps(request), str(answer)],
            env=env, capture_output=True, text=True,
        )
        if not answer.is_file():
            raise RuntimeError(
                f"The TensorFlow export subprocess ended (exit status {done.returncode}) without a result:\n"
                f"{(done.stderr or done.stdout)[-4000:]}"
            )
        data = json.loads(answer.read_text())
    if "error" in data:
        raise _reported_error(data["error"])
    return ExportResult.from_dict(data["result"])


def _worker(request_json: str, answer: str) -> int:
    """The subprocess side: run the export, write the result (or the error) as JSON to ``answer``."""
    try:
        data: dict[str, Any] = {"result": _export(json.loads(request_json)).to_dict()}
    except Exception as error:  # noqa: BLE001 - reported to the parent, which raises it again
        classes = [f"{cls.__module__}:{cls.__qualname__}" for cls in type(error).__mro__]
        data = {"error": {"classes": classes, "message": str(error)}}
    atomic_write_text(answer, json.dumps(data, default=str))
    return 1 if "error" in data else 0
