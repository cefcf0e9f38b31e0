"""From images to features: decoding, the backbones, the input pipeline and the feature cache.

The feature cache (:mod:`mlml_tf.features.cache`) is numpy only; the other modules use TensorFlow.
"""
