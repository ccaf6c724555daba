"""`make bench`: run every benchmark and write the figures to bench/RESULTS.md (and results.json).

Each part lives in its own module with ``run(results, *, quick=False)``; a part that fails is
reported as failed in the results and does not stop the others. ``--quick`` runs smaller sizes
(useful on a laptop; the README's figures come from a full run). ``--only NAME`` runs one part.
"""

from __future__ import annotations

import argparse
import importlib
import json
import platform
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

PARTS = {
    "cc_hook": "bench.bench_cc_hook",
    "member_db": "bench.bench_member_db",
    "engine": "bench.bench_engine",
    "sync": "bench.bench_sync",
    "sync_realistic": "bench.bench_sync_realistic",
    "send_list": "bench.bench_send_list",
    "activity": "bench.bench_activity",
    "events": "bench.bench_events",
    "list_rules": "bench.bench_list_rules",
    "tags": "bench.bench_tags",
    "undo": "bench.bench_undo",
    "console": "bench.bench_console",
    "airflow": "bench.bench_airflow",
    "celery": "bench.bench_celery",
}
OUT_DIR = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller sizes")
    parser.add_argument("--only", choices=sorted(PARTS), action="append", help="run only these parts")
    args = parser.parse_args()

    suffix = "-quick" if args.quick else ""
    results_file = OUT_DIR / f"results{suffix}.json"
    # `--only` refreshes some parts and keeps the others' last figures (each part says when it ran).
    results: dict[str, Any] = (
        json.loads(results_file.read_text()) if args.only and results_file.exists() else {}
    )
    python = f"{platform.python_implementation()} {platform.python_version()}"
    results.update({"machine": f"{platform.machine()}, {python}", "quick": args.quick})
    for name in args.only or PARTS:
        part: dict[str, Any] = {"ran_at": datetime.now(UTC).isoformat(timespec="seconds")}
        started = time.perf_counter()
        try:
            module = importlib.import_module(PARTS[name])
            module.run(part, quick=args.quick)
            part.setdefault("status", "ok")
        except Exception as exc:
            part["status"] = f"failed: {type(exc).__name__}: {exc}"
            traceback.print_exc()
        part["wall_seconds"] = round(time.perf_counter() - started, 1)
        results[name] = part
        print(f"== {name}: {json.dumps(part, default=str)}", flush=True)

    results_file.write_text(json.dumps(results, indent=2, default=str) + "\n")
    (OUT_DIR / f"RESULTS{suffix}.md").write_text(render_markdown(results))
    print(f"written: bench/RESULTS{suffix}.md")


def render_markdown(results: dict[str, Any]) -> str:
    lines = [
        "# Benchmark results",
        "",
        f"On {results['machine']} (2 cores, 24 GiB), each part when its `ran_at` says"
        + (" — quick mode, smaller sizes." if results["quick"] else "."),
        "Produced by `make bench` (bench/__main__.py); every figure below is measured, none typed in.",
        "",
    ]
    for name in PARTS:
        if name not in results:
            continue
        lines += [f"## {name}", "", "| measure | value |", "| --- | --- |"]
        for key, value in results[name].items():
            lines.append(f"| {key} | {value} |")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
