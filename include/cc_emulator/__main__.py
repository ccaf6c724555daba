"""``python -m include.cc_emulator``: serve the emulator with uvicorn."""

from __future__ import annotations

import argparse
import logging
from dataclasses import fields
from pathlib import Path

from include.cc_emulator.settings import (
    DEFAULT_ACCESS_TOKEN_TTL_SECONDS,
    DEFAULT_DAILY_QUOTA,
    DEFAULT_RATE_LIMIT_PER_SECOND,
    EmulatorSettings,
    FaultSettings,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m include.cc_emulator", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--state-file", type=Path, help="keep the account in this JSON file between runs")
    parser.add_argument("--no-rate-limit", action="store_true", help="switch off the 4 requests/s limit")
    parser.add_argument(
        "--rate-limit",
        type=float,
        default=DEFAULT_RATE_LIMIT_PER_SECOND,
        help="requests a second (default 4)",
    )
    parser.add_argument(
        "--daily-quota",
        type=int,
        default=DEFAULT_DAILY_QUOTA,
        help="requests a day; 0 or less switches it off",
    )
    parser.add_argument(
        "--access-token-ttl", type=float, default=DEFAULT_ACCESS_TOKEN_TTL_SECONDS, metavar="SECONDS"
    )
    parser.add_argument(
        "--activity-seconds", type=float, default=0.2, help="how long an activity stays processing"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the fault injector's random numbers")
    parser.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="switch a fault on from the start, e.g. --fault error_500_rate=0.05 --fault drop_rate=0.01 "
        "(names: the FaultSettings fields)",
    )
    parser.add_argument("--log-level", default="warning")
    return parser


def _faults_from_args(pairs: list[str], *, seed: int) -> FaultSettings:
    known = {f.name for f in fields(FaultSettings)} - {"seed"}
    values: dict[str, float | int] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or name not in known:
            raise SystemExit(f"--fault takes NAME=VALUE with NAME one of {sorted(known)}, got {pair!r}")
        values[name] = int(value) if name.endswith("_count") else float(value)
    faults = FaultSettings(seed=seed, **values)
    faults.validate()
    return faults


def settings_from_args(args: argparse.Namespace) -> EmulatorSettings:
    settings = EmulatorSettings(
        rate_limit_per_second=None if args.no_rate_limit else args.rate_limit,
        daily_quota=args.daily_quota if args.daily_quota > 0 else None,
        access_token_ttl_seconds=args.access_token_ttl,
        activity_processing_seconds=args.activity_seconds,
        faults=_faults_from_args(args.fault, seed=args.seed),
        state_file=args.state_file,
    )
    settings.validate()
    return settings


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    from include.cc_emulator import create_app

    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper())
    app = create_app(settings_from_args(args))
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level, access_log=False)


if __name__ == "__main__":
    main()
