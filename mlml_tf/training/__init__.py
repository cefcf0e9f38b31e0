"""Training heads on cached features (and end to end on images): a run's settings, its data,
the batch schedule, the Keras trainer and callbacks, and the run folder's bookkeeping.

:mod:`~mlml_tf.training.config`, :mod:`~mlml_tf.training.data`,
:mod:`~mlml_tf.training.schedule` and :mod:`~mlml_tf.training.record` are TensorFlow-free.
"""
