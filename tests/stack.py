"""One Airflow stack per end-to-end file: ``--check --keep-running``, then a SIGTERM.

Starting a stack costs minutes here, so each file (tests/test_airflow_ui.py, the standalone stack;
tests/test_airflow_celery.py, the Celery one) starts one, lets it run its checks, and then stops it
as a service manager would. What the checks printed, the process tree they ran in and what the
stopping printed are handed back for the test to assert on, once the stack is down.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psutil

from include.airflow_env import PROJECT_ROOT
from include.airflow_ui import CHECKS_DONE


@dataclass(frozen=True)
class StoppedStack:
    checks: list[str]  # the lines printed up to the end of the checks
    tree: list[psutil.Process]  # the stack's processes while it ran
    command_lines: str  # theirs, read while they ran
    stopping: str  # what it printed after the SIGTERM
    returncode: int
    logs: str  # the tail of the components' own logs, for a failure's message

    @property
    def checked(self) -> str:
        return "".join(self.checks)

    def assert_checks_passed(self) -> None:
        assert any(line.startswith(CHECKS_DONE) for line in self.checks), (
            f"{self.checked[-6000:]}\n{self.logs}"
        )
        assert "PROBLEM" not in self.checked, self.checked[-6000:]

    def assert_stopped_everything(self) -> None:
        assert "Stopping Airflow and the emulator" in self.stopping, self.stopping[-3000:]
        assert self.returncode == 0, f"exit status {self.returncode}: {self.stopping[-3000:]}"
        time.sleep(1)
        left = [proc for proc in self.tree if alive(proc)]
        assert left == [], f"still running after SIGTERM: {left}"


def check_then_sigterm(
    command: list[str], env: dict[str, str], *, logs: Callable[[], str], stop_timeout: float
) -> StoppedStack:
    """Run ``command`` (with ``--check --keep-running``) until its checks are done, then SIGTERM it
    and wait up to ``stop_timeout`` seconds for it to stop."""
    process = subprocess.Popen(
        command, cwd=PROJECT_ROOT, env=env | {"PYTHONUNBUFFERED": "1"}, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        checks = []
        for line in process.stdout or []:
            checks.append(line)
            if line.startswith(CHECKS_DONE):
                break
        tree = psutil.Process(process.pid).children(recursive=True) if process.poll() is None else []
        command_lines = " ".join(command_line(proc) for proc in tree)
        process.send_signal(signal.SIGTERM)
        stopping = process.communicate(timeout=stop_timeout)[0]
    finally:
        if process.poll() is None:
            process.kill()
    return StoppedStack(checks, tree, command_lines, stopping, process.returncode, logs())


def command_line(proc: psutil.Process) -> str:
    """A process's command line; "" for a short-lived helper that ended (or is a zombie) meanwhile."""
    try:
        return " ".join(proc.cmdline())
    except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
        return ""


def alive(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return False


def log_tails(paths: list[Path], chars: int) -> str:
    return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-chars:]}" for p in paths if p.exists())
