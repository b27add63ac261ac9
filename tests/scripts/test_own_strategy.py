"""scripts/own_strategy.py: the docs' copy is the file, and it trains and reports."""

import importlib.util
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "own_strategy.py"


def test_the_docs_show_the_script_as_it_is():
    docs = (ROOT / "docs" / "running.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", docs, flags=re.DOTALL)
    assert SCRIPT.read_text() in blocks


def test_the_script_trains_with_avalanche_heads_and_lifelong_metrics(capsys):
    spec = importlib.util.spec_from_file_location("own_strategy", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    report = module.main(epochs=1)
    assert len(report["accuracy_matrix"]) == 5 and report["average_accuracy"] > 0.6
    # Old stages, heads and the stem are frozen, and each task uses its own stage and head.
    assert abs(report["forgetting"]) < 1e-6
    assert "average accuracy" in capsys.readouterr().out
