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
import json, sys
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
try:
    train("cnn", output_dir=sys.argv[1] + "-odd", epochs=1, batch_size=31, limit=160, distribute=True, verbose=0)
except ValueError as error:
    print("REFUSED", error)
"""


@pytest.mark.skipif(BACKEND not in ("jax", "tensorflow"), reason="distribution needs jax or tensorflow")
@pytest.mark.skipif(find_data_dir() is None, reason="needs Fashion-MNIST ($FASHION_MNIST_DIR or dataset-fashion-mnist)")
def test_distributed_two_devices(tmp_path):
    env = {"KERAS_BACKEND": BACKEND}
    if BACKEND == "jax":
        env["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"
    code = f"import sys; sys.argv = ['-', {str(tmp_path / 'dist')!r}]\n" + _DISTRIBUTED
    out = run_python(code, env=env)
    assert "REPLICAS 12 STEPS 4" in out, out
    assert "METRICS {'accuracy'" in out
    assert ("DataParallel over 2 device" if BACKEND == "jax" else "MirroredStrategy") in out
    # A batch the two devices cannot share equally is refused before any training, naming the fix.
    assert "REFUSED A distributed run splits each batch equally over its 2 devices. Received: batch_size=31." in out, out
    assert "--batch-size 32" in out


@pytest.mark.skipif(BACKEND in ("jax", "tensorflow"), reason="data-parallel training exists on this backend")
def test_distribute_on_a_backend_without_it_is_refused_before_the_run_folder_exists(tmp_path):
    with pytest.raises(ValueError, match=f"Received: KERAS_BACKEND='{BACKEND}'"):
        train("cnn", output_dir=tmp_path / "run", epochs=1, limit=64, distribute=True, verbose=0)
    assert not (tmp_path / "run").exists()
