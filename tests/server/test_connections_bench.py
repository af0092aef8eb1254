"""``benchmarks/connections_bench.py`` at a small size, under an open-files limit it must run into
(marked slow: outside the default run).

    pytest -m slow tests/server/test_connections_bench.py
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "connections_bench.py"
FD_LIMIT = 700  # soft and hard, for the script and the server it starts


def _low_fd_limit() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (FD_LIMIT, FD_LIMIT))


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_held_connections_capped_by_the_fd_limit_all_receive_the_broadcast(tmp_path):
    out = tmp_path / "conns.json"
    r = subprocess.run(
        [sys.executable, str(BENCH), "--connections", "2000", "--loop", "asyncio", "--client-loop", "asyncio",
         "--workers", "3", "--source-addresses", "2", "--hold", "45", "--json", str(out)],
        capture_output=True, text=True, timeout=280, preexec_fn=_low_fd_limit,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert "CAPPED" in r.stderr
    (run,) = json.loads(out.read_text())["runs"]
    assert run["capped"] is True and run["connections_requested"] == 2000
    assert 500 < run["connections"] < FD_LIMIT, run  # the server's limit less what it holds open already
    assert run["client_workers"] == 3 and run["source_addresses"] == 2
    # held past the server's keepalive (pings every 20 s, 20 s to answer): the clients' pongs keep them open
    assert run["opened"] == run["held_by_server"] == run["broadcast_expected"] == run["connections"], run
    assert run["broadcast_reached"] == run["connections"] and run["broadcast_missed"] == 0, run
    assert run["open_errors"] == {}
