"""``python -m mlml_tf.cli``: the ``mlml-tf`` command."""

import sys

from mlml_tf.cli.main import main

sys.exit(main())
