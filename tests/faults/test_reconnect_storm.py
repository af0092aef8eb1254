"""A small run of ``benchmarks/reconnect_storm.py``: 40 real clients through a SIGTERM restart and a SIGKILL one.

Every client must come back with the planted rooms and unread counts, and every message sent
while the server was down must be stored once and reach each member of its room once.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

STORM = Path(__file__).resolve().parents[2] / "benchmarks" / "reconnect_storm.py"


@pytest.mark.timeout(60)
@pytest.mark.parametrize("how", [[], ["--kill"]], ids=["sigterm", "sigkill"])
def test_every_client_comes_back_right_and_nothing_is_lost(tmp_path, how):
    out = tmp_path / "storm.json"
    run = subprocess.run(
        [sys.executable, str(STORM), "--users", "40", "--hold", "0.3", "--timeout", "25", "--join-timeout", "25",
         "--json", str(out), *how],
        capture_output=True, text=True, timeout=55,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    report = json.loads(out.read_text())
    assert report["right"] == report["back"] == 40, report
    assert report["sent_while_down"] == 4
    assert (report["lost"], report["stored_twice"], report["delivered_twice"], report["still_in_outboxes"]) == (0, 0, 0, 0)
    assert report["clients_wire_bytes"] > 0 and report["server_peak_rss_mb"] > 0
