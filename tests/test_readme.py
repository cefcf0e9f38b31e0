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
