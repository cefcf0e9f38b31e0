"""The training stream.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from mlml_tf.features.cache import FeatureCache
from mlml_tf.training.schedule import batch_rows, memory_budget, step_count


def batch_index_stream(n_rows: int, batch_size: int, seed: int, start_step, epochs: int = 1,
                       steps_per_epoch: int | None = None, shuffle_buffer: int = 0):
    """``(dataset of the row indices of each training batch, steps per epoch)``.

    The batches of ``epochs`` epochs from step ``start_step()`` on, each from :func:`batch_rows`
    (a function of seed and step only). ``start_step()`` is called when the stream starts, after
    Keras' ``on_train_begin``, so that a run resumed by BackupAndRestore sees exactly the
    batches an uninterrupted one would have seen. ``steps_per_epoch=None`` makes an epoch one
    pass over the rows, floor(N / B) steps; a number sets the steps of an epoch over a repeating
    stream, as the original's floor(N1 / B).
    """

    steps = step_count(n_rows, batch_size, steps_per_epoch)

    def batch_indices():
        for step in range(int(start_step()), epochs * steps):
            yield batch_rows(n_rows, batch_size, seed, step, steps_per_epoch, shuffle_buffer)

    dataset = tf.data.Dataset.from_generator(
        batch_indices, output_signature=tf.TensorSpec((batch_size,), tf.int64)
    )
    return dataset, steps


def training_stream(cache: FeatureCache, rows: np.ndarray, batch_size: int, seed: int,
                    start_step, epochs: int = 1, steps_per_epoch: int | None = None,
                    shuffle_buffer: int = 0, in_memory: bool | None = None):
    """``(stream, steps per epoch, held features)`` of the training batches of ``epochs`` epochs.

    Each element of the stream holds the positions in ``rows`` of one batch, from
    :func:`batch_index_stream` (the k-th batch depends only on the seed and k; ``start_step``,
    ``steps_per_epoch`` and ``shuffle_buffer`` as there). ``in_memory``: the rows' features are
    returned (as cached, float16 unless the cache is float32) to be held on the device, and the
    stream carries the positions only (:class:`mlml_tf.trainer.TrainingRows` gathers each
    batch); otherwise each element is
    ``(positions, features)``, read from the cache file, and memory does not grow with the
    number of rows. Default: in memory when the features take at most :func:`memory_budget`.
    The batches are the same either way.
    """
    ds, steps = batch_index_stream(len(rows), batch_size, seed, start_step, epochs,
                                   steps_per_epoch, shuffle_buffer)
    if in_memory is None:
        in_memory = cache.nbytes(len(rows)) <= memory_budget()
    if in_memory:
        return ds.prefetch(2), steps, cache.read_stored(rows)

    def load(positions):
        x = tf.numpy_function(lambda p: cache.read(rows[p]), [positions], tf.float32)
        x.set_shape((batch_size, *cache.shape))
        return positions, x

    return ds.map(load, num_parallel_calls=1).prefetch(2), steps, None
