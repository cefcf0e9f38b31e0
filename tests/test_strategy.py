"""tf.distribute: MirroredStrategy over two logical CPU devices trains to the same loss."""

import json
import subprocess
import sys
import textwrap

import numpy as np

SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import numpy as np
    import pandas as pd

    from mlml_tf.features.cache import build_feature_cache
    from mlml_tf.files.split import split
    from mlml_tf.files.layout import write_groundtruth
    from mlml_tf.settings import RunConfig
    from mlml_tf.training.runs import train_run

    out = sys.argv[1]
    rng = np.random.default_rng(0)
    y = (rng.random((160, 6)) < 0.35).astype(np.uint8)
    ids = [f"{i:04d}" for i in range(160)]
    write_groundtruth(f"{out}/data", pd.DataFrame(y, index=ids, columns=list("abcdef")))
    split(f"{out}/data", ratios=[0.5], seed=0)
    x = y @ rng.normal(size=(6, 16)) + rng.normal(size=(160, 16))
    x = x.reshape(160, 2, 2, 4).astype(np.float32)
    cache = build_feature_cache(f"{out}/cache", ids, lambda: iter([x]), lambda b: b,
                                {"features": "projection"}, progress=False)
    result = {}
    for strategy in ("default", "mirrored"):
        config = RunConfig("cb-wce", 0.5, 1, epochs=2, batch_size=16, strategy=strategy)
        metrics = train_run(f"{out}/data", cache, f"{out}/{strategy}", config, verbose=0)
        extra = json.load(open(f"{out}/{strategy}/metrics.json"))["extra"]
        log = pd.read_csv(f"{out}/{strategy}/training_log.csv")
        result[strategy] = {"replicas": extra["replicas"], "loss": log["loss"].tolist(),
                            "auc": metrics["roc_auc_micro"]}
    print(json.dumps(result))
    """
)


def test_mirrored_strategy_on_two_cpus_gives_the_same_loss(tmp_path):
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path)], capture_output=True,
                          text=True, check=True)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["default"]["replicas"] == 1
    assert result["mirrored"]["replicas"] == 2
    np.testing.assert_allclose(result["mirrored"]["loss"], result["default"]["loss"], rtol=1e-5)
    assert abs(result["mirrored"]["auc"] - result["default"]["auc"]) < 1e-4
