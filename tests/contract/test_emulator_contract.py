"""The contract suite: schemathesis runs the official v3 spec against the emulator.

Every operation the emulator serves under /v3 is fuzzed in schemathesis's examples, coverage and
fuzzing phases (positive and negative data), with the checks for server errors, documented status
codes, content types and response schemas, and the negative-data check (a request the spec forbids
must be refused). The run fails on any failure that is not in ``ALLOWED`` below, on any error of the
run itself, and when it generated fewer than ``MIN_CASES`` cases.

``ALLOWED`` is the one allow-list: each entry names the operation, the schemathesis failure code, a
pattern its message must match and why the spec, not the emulator, is at fault. Nothing is silenced
by check or by operation as a whole.

The spec is reference data kept outside the project (``../shared``); without it the suite skips
(fails under ``CI=true``: tests/ci.py). Marked ``contract`` and ``slow``: ``make test`` runs it, as
does ``make test-contract``; ``make test-quick`` leaves it out. It takes a few minutes.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.routing import APIRoute

from include.cc_emulator import create_app
from include.cc_emulator.testing import EmulatorHandle, run_emulator
from tests.ci import skip_or_fail

pytestmark = [pytest.mark.contract, pytest.mark.slow, pytest.mark.timeout(1200)]

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SPEC_PATH = PROJECT_ROOT.parent / "shared" / "constant-contact" / "swagger.yaml"
# Cases per operation and phase; with the coverage phase's own cases this gives 5,000+ in all.
MAX_EXAMPLES = int(os.environ.get("CONTRACT_MAX_EXAMPLES", "100"))
MIN_CASES = int(os.environ.get("CONTRACT_MIN_CASES", "5000"))
# A fixed seed makes CI's run repeatable; set CONTRACT_SEED to explore other inputs.
SEED = os.environ.get("CONTRACT_SEED", "16")
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "negative_data_rejection",
)

# Server error; response body or header its schema rejects; body not valid JSON; body unreadable.
NEVER_ALLOWED = frozenset({"ST101", "ST108", "ST109", "ST110"})


@dataclass(frozen=True)
class Allowed:
    operation: str
    code: str
    message: str  # a regular expression the failure's message must match
    reason: str
    status: int | None = None  # when set, only a failure on an answer with this status


ALLOWED = (
    *(
        Allowed(
            operation,
            "ST104",
            r"",
            "A 204 has no body, so no Content-Type; the spec's global `produces: application/json` "
            "makes schemathesis expect one on every answer, including the documented 204.",
            status=204,
        )
        for operation in ("DELETE /contacts/{contact_id}", "DELETE /contact_custom_fields/{custom_field_id}")
    ),
    Allowed(
        "GET /contact_lists/{list_id}",
        "ST103",
        r"Received: 400",
        "include_membership_count has an enum; a value outside it is a 400 as on GET /contact_lists, "
        "but this operation's responses list no 400.",
    ),
    Allowed(
        "PUT /contact_lists/{list_id}",
        "ST103",
        r"Received: 409",
        "Renaming a list to another list's name is the conflict POST /contact_lists documents as 409; "
        "the PUT's responses list no 409.",
    ),
    Allowed(
        "GET /contact_exports/{file_export_id}",
        "ST105",
        r"Received: application/json",
        "An unknown export file is CC's JSON error like every 404; the operation's `produces` names "
        "only the file's text/csv, so schemathesis expects CSV on the 404 too.",
        status=404,
    ),
)


def served_operations() -> list[str]:
    """'METHOD /path' (as the spec names it, without /v3) of every /v3 route the emulator serves."""
    names = []
    for route in create_app().routes:
        if isinstance(route, APIRoute) and route.path.startswith("/v3/"):
            names += [f"{method} {route.path[len('/v3') :]}" for method in sorted(route.methods)]
    return names


@dataclass(frozen=True)
class Failure:
    operation: str
    code: str
    title: str
    message: str
    request: str
    status: int | None

    def allowed_by(self) -> Allowed | None:
        for entry in ALLOWED:
            if (
                (entry.operation, entry.code) == (self.operation, self.code)
                and entry.status in (None, self.status)
                and re.search(entry.message, self.message)
            ):
                return entry
        return None


def failures_of(ndjson: Path) -> list[Failure]:
    found = []
    for line in ndjson.read_text(encoding="utf-8").splitlines():
        event = json.loads(line)
        recorder = event.get("ScenarioFinished", {}).get("recorder")
        if not recorder:
            continue
        for case_id, checks in recorder.get("checks", {}).items():
            for check in checks:
                if check["status"] != "failure":
                    continue
                failure = check["failure_info"]["failure"]
                interaction = recorder.get("interactions", {}).get(case_id) or {}
                request = interaction.get("request") or {}
                response = interaction.get("response") or {}
                found.append(
                    Failure(
                        operation=failure.get("operation") or recorder["label"],
                        code=failure["code"],
                        title=failure["title"],
                        message=failure.get("message") or "",
                        request=f"{request.get('method')} {request.get('uri')}",
                        status=response.get("status_code"),
                    )
                )
    return found


@dataclass(frozen=True)
class ContractRun:
    report: dict[str, Any]
    failures: list[Failure]
    output: str


@pytest.fixture(scope="module")
def contract_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ContractRun]:
    if not SPEC_PATH.exists():
        skip_or_fail(
            f"the official Constant Contact spec is not at {SPEC_PATH} (reference data kept outside "
            "the project); the contract suite needs it"
        )
    out = tmp_path_factory.mktemp("contract")
    with run_emulator(
        rate_limit_per_second=None, daily_quota=None, activity_processing_seconds=0.0
    ) as emulator:
        yield _run_schemathesis(emulator, out)


def _run_schemathesis(emulator: EmulatorHandle, out: Path) -> ContractRun:
    token = emulator.admin.issue_access_token()
    command = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "run",
        str(SPEC_PATH),
        "--url",
        f"{emulator.base_url}/v3",
        # The header is given to the subprocess only; schemathesis filters it out of its reports.
        "--header",
        f"Authorization: Bearer {token}",
        *[arg for name in served_operations() for arg in ("--include-name", name)],
        "--checks",
        ",".join(CHECKS),
        "--phases",
        "examples,coverage,fuzzing",
        "--max-examples",
        str(MAX_EXAMPLES),
        "--seed",
        SEED,
        "--workers",
        "2",
        "--generation-database",
        "none",
        "--continue-on-failure",
        "--no-color",
        "--report",
        "json,ndjson",
        "--report-json-path",
        str(out / "report.json"),
        "--report-ndjson-path",
        str(out / "events.ndjson"),
    ]
    # No timeout here beyond the test's own: the run is bounded by --max-examples.
    done = subprocess.run(command, cwd=PROJECT_ROOT, capture_output=True, text=True, check=False)
    output = done.stdout + done.stderr
    report_path = out / "report.json"
    assert report_path.exists(), f"schemathesis wrote no report (exit {done.returncode}):\n{output[-4000:]}"
    report = json.loads(report_path.read_text(encoding="utf-8"))
    return ContractRun(report, failures_of(out / "events.ndjson"), output)


def test_every_served_operation_was_tested(contract_run: ContractRun) -> None:
    operations = contract_run.report["operations"]
    assert operations["selected"] == len(served_operations()), contract_run.output[-3000:]
    assert operations["tested"] == operations["selected"]
    assert operations["errored"] == 0
    assert not contract_run.report["errors"], contract_run.report["errors"]


def test_enough_cases_were_generated(contract_run: ContractRun) -> None:
    generated = contract_run.report["test_cases"]["generated"]
    assert generated >= MIN_CASES, f"only {generated} cases (CONTRACT_MAX_EXAMPLES={MAX_EXAMPLES})"


def test_no_server_error_and_no_response_schema_violation(contract_run: ContractRun) -> None:
    # Never allow-listed: a 500, or an answer its schema rejects or that is not JSON, is always the
    # emulator's bug.
    broken = [f for f in contract_run.failures if f.code in NEVER_ALLOWED]
    assert not broken, "\n".join(f"{f.operation} {f.code} {f.title}: {f.request}" for f in broken[:20])


def test_every_failure_is_an_explained_spec_quirk(contract_run: ContractRun) -> None:
    unexplained = [f for f in contract_run.failures if f.allowed_by() is None]
    assert not unexplained, "\n\n".join(
        f"{f.operation} {f.code} {f.title}\n{f.message}\n{f.request}" for f in unexplained[:20]
    )


def test_the_allow_list_is_short_and_explained() -> None:
    assert len(ALLOWED) <= 8
    assert all(entry.reason and entry.code not in NEVER_ALLOWED for entry in ALLOWED)
