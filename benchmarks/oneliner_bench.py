#!/usr/bin/env python3
"""How long ``workspace send`` takes from a cold start, and where the time goes.

Starts ``workspace serve`` on a free port, then times, alternating, RUNS of:

* ``python -c pass``: the interpreter alone, the floor for any Python tool;
* ``python -c "import ..."``: the interpreter plus every module ``send`` imports;
* ``workspace send``: the whole command, each run as a new user (so each run
  also creates its outbox file, as a first send does);
* optionally a reference one-liner (``--reference``), for a side-by-side.

``--floor`` adds the floor under ``send``: the interpreter without and with
``site``, then the same interpreter importing one more group of ``send``'s
modules per row (Click, asyncio, websockets' asyncio client, our protocol and
paths, our client, our CLI), each row holding the rows above it, so each
increment is what that group adds on top of what is already loaded (a module
two groups share counts for the first). ``--same-user`` sends as one user
every time (its outbox and key already exist: a repeated send) instead of a
new user per run (a first send: it creates both, with their fsyncs).

    python benchmarks/oneliner_bench.py
    python benchmarks/oneliner_bench.py --floor --runs 31
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

# With the garbage collector off, then exit frozen, as the console script does (workspace_tui.cli.run).
SEND_IMPORTS = (
    "import gc; gc.disable(); import workspace_tui.cli, workspace_tui.cli.oneliners, workspace_tui.client,"
    " workspace_tui.config; gc.freeze()"
)


# --floor: (name, the statement that imports one more group). Every row starts like the console
# script (collector off, send's placeholders) and ends like it (frozen), so rows differ by imports only.
_START = "import gc; gc.disable(); import workspace_tui.lazy_imports as z; z.defer_unused()"
FLOOR_GROUPS = (
    ("+ click", "import click"),
    ("+ asyncio", "import asyncio"),
    ("+ websockets' asyncio client", "import websockets.asyncio.client"),
    ("+ protocol, config and paths (platformdirs)", "import workspace_tui.protocol, workspace_tui.config"),
    ("+ our client (and keys)", "import workspace_tui.client, workspace_tui.client.keys"),
    ("+ our CLI (= send's imports)", "import workspace_tui.cli, workspace_tui.cli.oneliners"),
)


def floor_commands(python: str) -> dict[str, list[str]]:
    rows = {
        "python -S -c pass": [python, "-S", "-c", "import gc; gc.freeze()"],
        "python -c pass": [python, "-c", "import gc; gc.freeze()"],
    }
    statements = [_START]
    for name, statement in FLOOR_GROUPS:
        statements.append(statement)
        rows[name] = [python, "-c", "; ".join([*statements, "gc.freeze()"])]
    return rows


def wall_ms(argv: list[str]) -> float | None:
    t = time.perf_counter()
    code = subprocess.call(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return (time.perf_counter() - t) * 1000 if code == 0 else None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=21)
    ap.add_argument("--reference", help="another one-liner to time; {url}, {user} and {text} are filled in")
    ap.add_argument("--floor", action="store_true", help="also time the interpreter plus each group of imports")
    ap.add_argument("--same-user", action="store_true", help="send as one user every run (a repeated send)")
    ap.add_argument("--json", help="write the figures here too")
    a = ap.parse_args()

    python = sys.executable
    commands = {
        "python -c pass": lambda i: [python, "-c", "pass"],
        "python + send's imports": lambda i: [python, "-c", SEND_IMPORTS],
    }
    if a.floor:
        commands = {name: (lambda i, argv=argv: argv) for name, argv in floor_commands(python).items()}
    sender = (lambda i: "bench") if a.same_user else (lambda i: f"bench{i}")
    commands["workspace send"] = lambda i: [*workspace_cmd(), "send", "--url", url, "--username", sender(i), f"hello-{i}"]
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
    if a.floor:
        print("\nthe floor, row by row (each row adds to the one above; medians)")
        print("| step | adds ms | total ms |\n| --- | ---: | ---: |")
        before = 0.0
        for name, r in results.items():
            if name == "reference" or r["median_ms"] is None:
                continue
            label = "+ the work (parse, outbox, connect, send, echo, close, exit)" if name == "workspace send" else name
            print(f"| {label} | {r['median_ms'] - before:.1f} | {r['median_ms']} |")
            before = r["median_ms"]
    ours, ref = results["workspace send"]["median_ms"], results.get("reference", {}).get("median_ms")
    if ours and ref:
        print(f"workspace send / reference: {ours / ref:.2f}")
    if a.json:
        Path(a.json).write_text(json.dumps(results, indent=1))
    return 1 if any(failures.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
