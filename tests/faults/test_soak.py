"""A short run of ``benchmarks/soak.py`` (marked slow: outside the default run).

    pytest -m slow tests/faults/test_soak.py
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

SOAK = Path(__file__).resolve().parents[2] / "benchmarks" / "soak.py"


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_short_soak_loses_nothing_and_memory_stays_flat(tmp_path):
    spec = importlib.util.spec_from_file_location("soak", SOAK)
    assert spec and spec.loader
    soak = importlib.util.module_from_spec(spec)
    sys.modules["soak"] = soak
    spec.loader.exec_module(soak)
    out = tmp_path / "soak.json"
    code = soak.main(["--clients", "200", "--duration", "20", "--interval", "5", "--sample", "1", "--json", str(out)])
    import json

    report = json.loads(out.read_text())
    assert code == 0, report
    assert report["messages_sent"] > 100 and report["messages_stored"] == report["messages_sent"]
    assert report["deliveries"] == report["deliveries_expected"]
    # flat after warm-up: the steady window grows by less than 16 MiB
    assert report["rss_kb_steady_max"] - report["rss_kb_steady_min"] < 16 * 1024, report["rss_samples"]
