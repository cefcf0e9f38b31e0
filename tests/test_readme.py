"""The README's two opening commands stay true: CI runs exactly the test command it gives."""

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _opening_commands() -> list[str]:
    blocks = re.findall(r"```bash\n(.*?)```", (REPO / "README.md").read_text(), re.S)
    return [b.strip() for b in blocks[:2]]


def test_ci_runs_the_readme_test_command():
    demo, tests = _opening_commands()
    assert demo.endswith("mlml-tf demo") and 'pip install -e .' in demo
    assert '".[test]"' in tests and "pytest" in tests
    assert tests in (REPO / ".ci" / "run").read_text()


def test_the_demo_command_is_declared():
    text = (REPO / "pyproject.toml").read_text()
    assert 'mlml-tf = "mlml_tf.cli:main"' in text


def test_the_worked_example_of_a_new_method_trains(monkeypatch, tmp_path):
    """The README's method of one's own, registered, gives a run its targets and weights."""
    import numpy as np
    import pandas as pd

    from mlml_tf.apps.grid import run_config
    from mlml_tf.files.layout import write_groundtruth
    from mlml_tf.files.split import split
    from mlml_tf.methods import registry
    from mlml_tf.training.data import load_run_data

    text = (REPO / "README.md").read_text()
    example = re.search(r"### A method, a protocol or an option of your own.*?```python\n(.*?)```",
                        text, re.S).group(1)
    namespace: dict = {}
    exec(example, namespace)
    method = namespace["RATE_WCE"]
    monkeypatch.setitem(registry.METHODS, method.name, method)
    rng = np.random.default_rng(0)
    labels = pd.DataFrame((rng.random((64, 4)) < 0.4).astype(np.uint8),
                          index=[str(i) for i in range(64)], columns=list("abcd"))
    write_groundtruth(tmp_path, labels)
    split(tmp_path, n_folds=2, ratios=[0.5], seed=0)
    config = run_config("rate-wce", 0.5, 1, params={"strength": 0.5})
    data = load_run_data(tmp_path, config)
    zeros = data.train_labels == 0
    rate = (data.train_labels == 1).mean(axis=0)
    np.testing.assert_allclose(data.weights[zeros], np.broadcast_to(1 - 0.5 * rate,
                                                                   zeros.shape)[zeros], rtol=1e-6)
