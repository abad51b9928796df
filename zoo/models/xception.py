"""Xception classifier + bounding-box localizer (two outputs: ``class`` and ``box``)."""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

import keras

from zoo.layers import DATA_FORMAT
from zoo.models._checks import check_bool, check_choice, check_dtype, check_input_shape, check_num_classes
from zoo.models._tags import fashion_mnist_weights
from zoo.recipe import Recipe
from zoo.registry import register_model

#: Xception's own lower bound on input size.
MIN_SIZE = 71

# The fmnist-loc recipe, made for a CPU (issue 11's ~5 h budget on a 2-core avx512_bf16 machine).
# Measured training speed on a 2-core Intel Xeon with avx512_bf16/amx_bf16 (random canvases, batch
# 64, 2026-11-30): mixed_bfloat16 at 96 px 20.8 img/s (torch) / 18.7 (TF); at 80 px 27.8 (torch); at
# 72 px 35.3 (torch) / 37.2 (TF); float32 at 72 px 28.1 (torch). So: 72 px canvases (Xception needs
# 71; items are scaled up to 2.5 x 28 = 70 px), TensorFlow (the default backend, the fastest here),
# mixed_bfloat16, 12 epochs. Progressive resizing cannot pay: 71 px is Xception's floor. Batch 64
# (more steps in a short run), lr 0.025 (0.05 at 128, scaled), one warm-up epoch.
# Pilot of this recipe (2026-11-30, `--epochs 3 --limit 14000`: 12,544 train canvases, 588 steps):
# 34 img/s on real canvases (368 s per 12.5k epoch: ~27 min per full epoch, ~5.5 h for 12); by
# epoch, val class accuracy 0.561 / 0.783 / 0.854, mean box IoU 0.713 / 0.773 / 0.832, IoU >= 0.5
# 0.949 / 0.979 / 0.995; test (10,000 canvases) 0.841 / 0.834 / 0.9945. The boxes are near their
# targets after 6% of the run's steps; class accuracy is what the 12 full epochs are for.
# Flips only (boxes are mirrored); the box loss is weighted up from the tutorial's 0.2 because box
# MSE gradients are small next to cross-entropy's. BN momentum 0.9: the deep layers' true variances
# are ~1e-5, and from their initial 1.0 the moving variances need over 1,000 steps at Keras' 0.99
# to get there (inference outputs were constant until then in a short CPU run); at 0.9 about 100.
# The release (2026-11-30): this recipe unchanged, on a lent NVIDIA H200 with Keras on JAX in
# mixed_bfloat16 (scripts/gpu_release.py; a ResNet-34 run shared the GPU): 124 s for the first
# epoch (XLA compilation), then 13-16 s an epoch (3,400-4,200 img/s); 4.5 minutes for the 12 epochs
# (the card's 2,530 img/s averages the compile epoch in). Validation by epoch 6-12: class accuracy 0.900
# 0.902 0.906 0.914 0.917 0.921 0.919, mean box IoU 0.842 -> 0.865, IoU >= 0.5 0.998-0.999; train
# class accuracy 0.976 at the end (it overfits the classes; the boxes do not). Best val_loss at
# epoch 10. Test (10,000 canvases, float16 storage): class accuracy 91.64% (target 92%, floor 90%),
# mean box IoU 0.866, IoU >= 0.5 99.9%. The CPU run of the same recipe had reached epoch 1 of 12.
# On a 2-core Intel Xeon with AVX-512 (VNNI) but no bfloat16 (2026-12-01, `python -m
# zoo.training.backend_probe xception_localizer --steps 5`, the machine otherwise paused): float32 at
# 72 px, batch 64: TensorFlow 41.9 img/s, torch 31.4; so a 55,000-canvas epoch takes ~22 min on
# TensorFlow and the 12 epochs ~4.4 h. `fresh_canvases` (new canvases every batch) costs 7.4 ms per
# batch of 64 to synthesize (numpy, measured beside a training run): under 1% of a ~1.5 s step.
# The CPU release that replaced the H200 one (2026-12-02, sessions 21-22, resumed once; that AVX-512
# Xeon, TensorFlow, float32, `--set fresh_canvases=true`, now the default): 12 epochs in 4.63 hours
# (1242-1417 s an epoch alone on the CPU, 39-44 img/s; 1480-1880 s for epochs 1, 2 and 8, beside
# other work; 39.6 img/s overall). Fresh canvases closed the gap between train and validation class accuracy (epoch 6:
# 0.906 / 0.905; epoch 12: 0.934 / 0.926, against 0.976 / 0.919 on fixed canvases). Validation by
# epoch 6-12: class accuracy 0.905 0.917 0.921 0.921 0.925 0.924 0.926, mean box IoU 0.817 -> 0.888,
# IoU >= 0.5 0.996-1.000; best val_loss at epoch 12. Test (10,000 canvases): class accuracy 92.48%
# (92.49% stored in float16), mean box IoU 0.888, IoU >= 0.5 99.95%: all three targets met.
LOCALIZER_RECIPE = Recipe(
    arch="xception_localizer", task="localization", optimizer="sgd", lr=0.025,
    warmup_epochs=1, weight_decay=1e-4, label_smoothing=0.1, epochs=12, batch_size=64,
    pad_crop=0, flip=True, erasing_p=0.0, monitor="val_loss", bn_momentum=0.9,
    loss_weights={"class": 1.0, "box": 5.0}, fresh_canvases=True,
    notes="Target: >= 92% class accuracy, mean box IoU >= 0.85, >= 97% of boxes at IoU >= 0.5.",
)

_LOCALIZATION = fashion_mnist_weights(
    "xception_localizer",
    tag="fmnist-loc",
    dataset="fashion_mnist_localization",
    description=(
        "Trained from scratch on 72x72 canvases synthesized from Fashion-MNIST "
        "(zoo.data.localization): one scaled item per canvas plus clutter fragments."
    ),
    overrides={"input_shape": (72, 72, 1), "num_classes": 10},
    targets={"class_accuracy": 0.92, "box_iou": 0.85, "iou_50": 0.97},
    release_floor={"class_accuracy": 0.90, "box_iou": 0.80, "iou_50": 0.95},
    recipe=LOCALIZER_RECIPE,
)


_AUTO_NAMED = re.compile(r"^(conv2d|batch_normalization|add)(_\d+)?$")


def _rename_strings(value: Any, renames: dict[str, str]) -> Any:
    if isinstance(value, str):
        return renames.get(value, value)
    if isinstance(value, (list, tuple)):
        return type(value)(_rename_strings(v, renames) for v in value)
    if isinstance(value, dict):
        return {k: _rename_strings(v, renames) for k, v in value.items()}
    return value


def xception_backbone(input_shape: tuple[int, int, int], weights: str | None, dtype: str | None = None) -> keras.Model:
    """``keras.applications.Xception(include_top=False)`` with every layer given a fixed name.

    Keras names a few of Xception's layers automatically (``conv2d_3``, ``add_7``), and those
    names depend on what was built earlier in the session. Safetensors keys are built from
    layer names, so those layers are renamed by their order in the network
    (``auto_conv2d_1``, ...) and the network is rebuilt from the renamed config, with every
    layer given the dtype policy ``dtype`` (``keras.applications.Xception`` has no argument for it).

    Example:
        >>> xception_backbone((96, 96, 1), None).get_layer("auto_conv2d_1").kernel_size
        (1, 1)
    """
    original = keras.applications.Xception(include_top=False, weights=weights, input_shape=input_shape)
    counts: Counter = Counter()
    renames = {}
    for layer in original.layers:
        match = _AUTO_NAMED.match(layer.name)
        if match:
            counts[match.group(1)] += 1
            renames[layer.name] = f"auto_{match.group(1)}_{counts[match.group(1)]}"
    config = _rename_strings(original.get_config(), renames)
    config["name"] = "xception"
    if dtype is not None:
        for layer in config["layers"]:
            if layer["class_name"] != "InputLayer":  # inputs keep their float32 tensor dtype
                layer["config"]["dtype"] = dtype
    backbone = keras.Model.from_config(config)
    backbone.set_weights(original.get_weights())
    return backbone


# Both output layers are the head: a feature extractor (include_top=False) has neither.
@register_model(weights=[_LOCALIZATION], head=("class", "box"), task="localization")
def xception_localizer(
    input_shape: tuple[int, int, int] = (96, 96, 1),
    num_classes: int = 10,
    backbone_weights: str | None = None,
    include_top: bool = True,
    dtype: str | None = None,
) -> keras.Model:
    """Xception backbone, global average pooling, a softmax ``class`` head and a ``box`` head.

    The ``class`` Dense layer makes the logits and ``class_probabilities`` their softmax (training
    fits :func:`zoo.logits.logits_view`). The ``box`` output is ``(center_x, center_y, width, height)`` normalised to [0, 1]
    (a sigmoid keeps it there). ``backbone_weights="imagenet"`` needs 3 channels and network.
    ``dtype`` is every layer's dtype policy (``None``: the global one); both heads output float32.
    ``include_top=False`` is the feature extractor: no ``class`` and ``box`` heads, one output,
    the globally average-pooled backbone features (2048); ``num_classes`` is then unused.

    Example:
        >>> model = xception_localizer(input_shape=(96, 96, 1), num_classes=10)
        >>> sorted(tuple(o.shape) for o in model.outputs)
        [(None, 4), (None, 10)]
        >>> xception_localizer(input_shape=(71, 71, 1), include_top=False).output_shape
        (None, 2048)
    """
    input_shape = check_input_shape(input_shape, min_size=MIN_SIZE, name="xception_localizer")
    if keras.config.image_data_format() != DATA_FORMAT:
        # keras.applications.Xception follows the global setting and has no argument for it.
        raise ValueError(
            "xception_localizer is built by keras.applications.Xception, which follows the global "
            "image data format; it needs 'channels_last' (inputs (height, width, channels)). Call "
            "keras.config.set_image_data_format('channels_last') first. "
            f"Received: keras.config.image_data_format()={keras.config.image_data_format()!r}"
        )
    if check_bool("include_top", include_top):
        num_classes = check_num_classes(num_classes)
    dtype = check_dtype(dtype)
    check_choice("backbone_weights", backbone_weights, (None, "imagenet"))
    if backbone_weights == "imagenet" and input_shape[-1] != 3:
        raise ValueError(
            "ImageNet backbone weights need 3 input channels. "
            f"Received: input_shape={input_shape!r}"
        )
    inputs = keras.Input(shape=input_shape, name="image")
    x = keras.layers.Rescaling(1.0 / 127.5, offset=-1.0, name="rescale", dtype=dtype)(inputs)
    x = xception_backbone(input_shape, backbone_weights, dtype)(x)
    x = keras.layers.GlobalAveragePooling2D(data_format=DATA_FORMAT, name="avg_pool", dtype=dtype)(x)
    if not include_top:
        return keras.Model(inputs, x, name="xception_localizer")
    class_logits = keras.layers.Dense(num_classes, dtype="float32", name="class")(x)
    class_output = keras.layers.Activation("softmax", dtype="float32", name="class_probabilities")(class_logits)
    box_output = keras.layers.Dense(4, activation="sigmoid", dtype="float32", name="box")(x)
    return keras.Model(inputs, {"class": class_output, "box": box_output}, name="xception_localizer")
