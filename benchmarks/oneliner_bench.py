#!/usr/bin/env python3
"""How long ``workspace send`` takes from a cold start, and where the time goes.

Starts ``workspace serve`` on a free port, then times, alternating, RUNS of:

* ``python -c pass``: the interpreter alone, the floor for any Python tool;
* ``python -c "import ..."``: the interpreter plus every module ``send`` imports;
* ``workspace send``: the whole command, each run as a new user (so each run
  also creates its outbox file, as a first send does);
* optionally a reference one-liner (``--reference``), for a side-by-side.

    python benchmarks/oneliner_bench.py
    python benchmarks/oneliner_bench.py --reference \\
        "node $HOME/.cache/workspace-bench/node_send.mjs {url} {user} {text}"

Each run is timed with a blocking wait for the child. (``subprocess.run`` with
a ``timeout`` polls with sleeps of up to 50 ms instead, which rounds a 100 ms
command up to about 114 ms and a 120 ms one to about 164 ms.)
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from server_bench import ServerProcess, workspace_cmd  # noqa: E402

# ...then exit as the console script does (see workspace_tui.cli.run).
SEND_IMPORTS = (
    "import gc, workspace_tui.cli, workspace_tui.cli.oneliners, workspace_tui.client, workspace_tui.config; gc.freeze()"
)


def wall_ms(argv: list[str]) -> float | None:
    t = time.perf_counter()
    code = subprocess.call(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return (time.perf_counter() - t) * 1000 if code == 0 else None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=21)
    ap.add_argument("--reference", help="another one-liner to time; {url}, {user} and {text} are filled in")
    ap.add_argument("--json", help="write the figures here too")
    a = ap.parse_args()

    python = sys.executable
    commands = {
        "python -c pass": lambda i: [python, "-c", "pass"],
        "python + send's imports": lambda i: [python, "-c", SEND_IMPORTS],
        "workspace send": lambda i: [*workspace_cmd(), "send", "--url", url, "--username", f"bench{i}", f"hello-{i}"],
    }
    if a.reference:
        commands["reference"] = lambda i: [
            part.format(url=url, user=f"ref{i}", text=f"hello-{i}") for part in shlex.split(a.reference)
        ]

    with tempfile.TemporaryDirectory(prefix="workspace-bench-") as tmp:
        srv = ServerProcess(Path(tmp) / "oneliner.sqlite3")
        url = srv.url
        walls: dict[str, list[float]] = {name: [] for name in commands}
        failures = dict.fromkeys(commands, 0)
        try:
            for i in range(a.runs):
                for name, argv in commands.items():
                    ms = wall_ms(argv(i))
                    if ms is None:
                        failures[name] += 1
                    else:
                        walls[name].append(ms)
        finally:
            srv.stop()

    results = {
        name: {
            "median_ms": round(statistics.median(w), 1) if w else None,
            "min_ms": round(min(w), 1) if w else None,
            "failures": failures[name],
        }
        for name, w in walls.items()
    }
    print(f"{a.runs} runs each, alternating")
    print("| command | median ms | min ms | failures |\n| --- | ---: | ---: | ---: |")
    for name, r in results.items():
        print(f"| {name} | {r['median_ms']} | {r['min_ms']} | {r['failures']} |")
    ours, ref = results["workspace send"]["median_ms"], results.get("reference", {}).get("median_ms")
    if ours and ref:
        print(f"workspace send / reference: {ours / ref:.2f}")
    if a.json:
        Path(a.json).write_text(json.dumps(results, indent=1))
    return 1 if any(failures.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
