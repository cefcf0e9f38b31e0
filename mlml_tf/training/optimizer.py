"""Adadelta as TF1 ran it.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from mlml_tf.errors import DataError
from mlml_tf.settings import RunConfig


@keras.saving.register_keras_serializable(package="mlml_tf")
class FusedAdadelta(keras.optimizers.Adadelta):
    """Keras' Adadelta, each variable updated by TensorFlow's fused ``ApplyAdadelta`` kernel.

    The kernel is the one TF1's ``AdadeltaOptimizer`` ran in the original (docs/original.md section
    7): the same rule as Keras' Adadelta, in one pass over the variable and its two accumulators
    instead of about ten element-wise operations, each a pass over memory. On the paper's head,
    whose step is bound by memory traffic, that is a quarter of the step
    (``benchmarks/bench_steps.py``). Same variables, same checkpoints; sparse gradients and
    distribution strategies take Keras' own update.
    """

    def update_step(self, gradient, variable, learning_rate):
        if isinstance(gradient, tf.IndexedSlices) or tf.distribute.has_strategy():
            return super().update_step(gradient, variable, learning_rate)
        index = self._get_variable_index(variable)
        dtype = variable.dtype
        tf.raw_ops.ResourceApplyAdadelta(
            var=variable.handle,
            accum=self._accumulated_grads[index].handle,
            accum_update=self._accumulated_delta_vars[index].handle,
            # rho and epsilon straight to the variable's dtype: a cast of a Python float would
            # round it to float32 first.
            lr=tf.cast(learning_rate, dtype), rho=tf.constant(self.rho, dtype),
            epsilon=tf.constant(self.epsilon, dtype), grad=tf.cast(gradient, dtype),
        )


def adadelta(config: RunConfig):
    """The optimizer of a run: Adadelta as TF1 ran it in the original (docs/original.md section 7).
    """

    rate = config.learning_rate
    if config.lr_schedule == "exponential-decay":
        rate = keras.optimizers.schedules.ExponentialDecay(
            config.learning_rate, config.decay_steps, config.decay_rate, staircase=True
        )

    return FusedAdadelta(learning_rate=rate, rho=config.rho, epsilon=config.epsilon)


def get_strategy(name: str = "default"):
    """A ``tf.distribute`` strategy by name: default, mirrored, multiworker or tpu."""
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        # Every GPU; without one, every logical CPU device (MirroredStrategy alone would take
        # only the first CPU).
        devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
        return tf.distribute.MirroredStrategy([d.name for d in devices])
    if name == "multiworker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "tpu":
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver()
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    raise DataError(f"unknown strategy {name!r}")
