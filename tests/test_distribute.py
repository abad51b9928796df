"""Data-parallel training over two simulated devices (TensorFlow's MirroredStrategy, JAX's
DataParallel): every replica holds the same weights after training, the run records how it was
distributed, and a batch size the devices cannot share equally is refused. Runs in the
TensorFlow and JAX suites; the PyTorch suite checks that ``distribute=True`` is refused there
(PyTorch has no data-parallel path here)."""

import keras
import pytest
from conftest import run_python

from zoo.data.fashion_mnist import find_data_dir
from zoo.training import train

BACKEND = keras.backend.backend()


_DISTRIBUTED = """
import json, os, sys
import keras, numpy as np
backend = keras.backend.backend()
if backend == "tensorflow":
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from zoo.training import train

class CheckReplicas(keras.callbacks.Callback):
    def on_train_end(self, logs=None):
        for variable in self.model.weights:
            if backend == "jax":
                array = variable.value
                assert len(array.sharding.device_set) == 2 and array.sharding.is_fully_replicated
                copies = [np.asarray(shard.data) for shard in array.addressable_shards]
            else:
                strategy = self.model.distribute_strategy
                assert strategy.num_replicas_in_sync == 2
                copies = [np.asarray(v) for v in strategy.experimental_local_results(variable.value)]
            assert len(copies) == 2, variable.path
            assert np.array_equal(copies[0], copies[1]), variable.path
        steps = int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))
        print("REPLICAS", len(self.model.weights), "STEPS", steps)

run = train("cnn", output_dir=sys.argv[1], epochs=1, batch_size=32, limit=160, distribute=True,
            callbacks=[CheckReplicas()], verbose=0)
print("METRICS", json.loads((run / "metrics.json").read_text()))
print("CONFIG", json.loads((run / "metadata.json").read_text())["training"]["distribute"])
for suffix, kwargs in (("-odd", {"batch_size": 31, "limit": 160}), ("-tiny", {"limit": 11}),  # validation: 1 image (and 10 training)
                       ("-small", {"batch_size": 32, "limit": 21})):  # 19 training images: one batch of 19
    try:
        train("cnn", output_dir=sys.argv[1] + suffix, epochs=1, distribute=True, verbose=0, **kwargs)
    except ValueError as error:
        print("REFUSED", error, "| FOLDER", os.path.exists(sys.argv[1] + suffix))
"""

# In a process of its own: a second MirroredStrategy in one TensorFlow process reuses the first one's
# collective instances (a shape mismatch between the two models' gradients).
_DISTRIBUTED_FINETUNE = _DISTRIBUTED.split("from zoo.training import train")[0] + """
from PIL import Image
from zoo.training import finetune
pictures = sys.argv[1] + "-pictures"
for label in range(3):  # 9 pictures: 7 train + 2 validation
    os.makedirs(f"{pictures}/class{label}")
    for i in range(3):
        Image.fromarray(np.full((28, 28), 40 * label + i, np.uint8)).save(f"{pictures}/class{label}/{i}.png")
tuned = finetune("cnn", data=pictures, output_dir=sys.argv[1] + "-tuned", epochs=1, batch_size=8, distribute=True, verbose=0)
print("FINETUNED batch", json.loads((tuned / "metadata.json").read_text())["recipe"]["batch_size"])
try:
    finetune("cnn", data=pictures, output_dir=sys.argv[1] + "-tuned1", epochs=1, val_fraction=0.1, distribute=True, verbose=0)
except ValueError as error:
    print("REFUSED", error, "| FOLDER", os.path.exists(sys.argv[1] + "-tuned1"))
"""


@pytest.mark.skipif(BACKEND not in ("jax", "tensorflow"), reason="distribution needs jax or tensorflow")
@pytest.mark.skipif(find_data_dir() is None, reason="needs Fashion-MNIST ($FASHION_MNIST_DIR or dataset-fashion-mnist)")
def test_distributed_two_devices(tmp_path):
    env = {"KERAS_BACKEND": BACKEND}
    if BACKEND == "jax":
        env["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"
    code = f"import sys; sys.argv = ['-', {str(tmp_path / 'dist')!r}]\n" + _DISTRIBUTED
    out = run_python(code, env=env)
    out += run_python(f"import sys; sys.argv = ['-', {str(tmp_path / 'dist')!r}]\n" + _DISTRIBUTED_FINETUNE, env=env)
    assert "REPLICAS 12 STEPS 4" in out, out
    assert "METRICS {'accuracy'" in out
    assert ("DataParallel over 2 device" if BACKEND == "jax" else "MirroredStrategy") in out
    # A batch the two devices cannot share equally is refused before any training, naming the fix.
    assert "REFUSED A distributed run splits each batch equally over its 2 devices. Received: batch_size=31." in out, out
    assert "--batch-size 32" in out
    # Refused before the run folder exists (they trained an epoch first, then crashed or were refused
    # leaving a folder that needed --overwrite): too few validation images for the devices...
    assert ("REFUSED A distributed run splits each validation batch over its 2 devices, and the validation split "
            "has 1 image(s): raise --limit, or train on one device. Received: val_count=1 | FOLDER False") in out, out
    assert "(e.g. --batch-size 32). | FOLDER False" in out
    assert "the validation split has 1 image(s): raise --val-fraction (now 0.1) or add pictures" in out
    assert ("the training split has 19 image(s), trained as one batch (fewer than batch_size=32) that is no multiple "
            "of the devices: change --limit, or train on one device. Received: train_count=19 | FOLDER False") in out
    assert out.count("| FOLDER False") == 4
    # ...while a batch capped at the 7 training pictures is capped to a multiple of the devices (it was 7: refused).
    assert "FINETUNED batch 6" in out


@pytest.mark.skipif(BACKEND in ("jax", "tensorflow"), reason="data-parallel training exists on this backend")
def test_distribute_on_a_backend_without_it_is_refused_before_the_run_folder_exists(tmp_path):
    with pytest.raises(ValueError, match=f"Received: KERAS_BACKEND='{BACKEND}'"):
        train("cnn", output_dir=tmp_path / "run", epochs=1, limit=64, distribute=True, verbose=0)
    assert not (tmp_path / "run").exists()
