"""Run-time settings of the emulator: limits, token lifetime, activity timing and fault rates.

One ``EmulatorSettings`` object is given to ``create_app`` and can be changed while the emulator runs
(``POST /_admin/configure``), so a test or a benchmark can switch limits and faults on and off without
a restart. ``None`` switches a limit off.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

# Constant Contact's published limits (rate_limits.html): 4 requests a second, 10,000 a day per API key.
DEFAULT_RATE_LIMIT_PER_SECOND = 4.0
DEFAULT_DAILY_QUOTA = 10_000
DEFAULT_ACCESS_TOKEN_TTL_SECONDS = 24 * 3600
DEFAULT_MAX_QUEUED_ACTIVITIES = 1_000
MAX_CUSTOM_FIELDS = 100


@dataclass
class FaultSettings:
    """Shares (0..1) of /v3 requests that fail on purpose; drawn from ``random.Random(seed)``."""

    error_429_rate: float = 0.0
    error_500_rate: float = 0.0
    error_503_rate: float = 0.0
    slow_rate: float = 0.0
    slow_seconds: float = 2.0
    drop_rate: float = 0.0
    # The request is carried out, then the connection drops before the answer: did my write happen?
    lost_answer_rate: float = 0.0
    truncate_rate: float = 0.0
    activity_fail_rate: float = 0.0
    # The next N bulk activities end failed whatever the rate: a fault that strikes exactly once
    # (or N times), so a test can count what recovering from it costs.
    activity_fail_count: int = 0
    # A refresh at the token endpoint rotates the token, then the answer is lost: the next refresh
    # with the old token gets invalid_grant (the lost-write lockout of rotating refresh tokens).
    token_lost_answer_rate: float = 0.0
    seed: int = 0

    @property
    def any_active(self) -> bool:
        if self.activity_fail_count > 0:
            return True
        return any(
            rate > 0
            for rate in (
                self.error_429_rate,
                self.error_500_rate,
                self.error_503_rate,
                self.slow_rate,
                self.drop_rate,
                self.lost_answer_rate,
                self.truncate_rate,
                self.activity_fail_rate,
                self.token_lost_answer_rate,
            )
        )

    def validate(self) -> None:
        for f in fields(self):
            if f.name.endswith("_rate"):
                value = getattr(self, f.name)
                if not 0.0 <= value <= 1.0:
                    raise ValueError(f"{f.name} must be between 0 and 1, got {value!r}")
        if self.slow_seconds < 0:
            raise ValueError("slow_seconds must not be negative")
        if self.activity_fail_count < 0:
            raise ValueError("activity_fail_count must not be negative")


@dataclass
class EmulatorSettings:
    rate_limit_per_second: float | None = DEFAULT_RATE_LIMIT_PER_SECOND
    daily_quota: int | None = DEFAULT_DAILY_QUOTA
    access_token_ttl_seconds: float = DEFAULT_ACCESS_TOKEN_TTL_SECONDS
    max_queued_activities: int = DEFAULT_MAX_QUEUED_ACTIVITIES
    # How long an activity stays "processing" before its work is applied, so polling can be exercised.
    activity_processing_seconds: float = 0.2
    max_custom_fields: int = MAX_CUSTOM_FIELDS
    # Oldest request-log entries are dropped beyond this, so a long benchmark does not grow without end.
    request_log_size: int = 100_000
    # Request bodies up to this size are kept in the log (redacted) for tests to check what was sent;
    # a bigger one (a bulk import) is noted by its size, so the log stays small.
    request_log_body_bytes: int = 256 * 1024
    # Addresses an import refuses (as CC refuses ones on its do-not-mail list), and whether its
    # activity errors name the row ("import_data[3]: ...") or are bare text, as CC's may be.
    refused_import_emails: list[str] = field(default_factory=list)
    import_errors_name_rows: bool = True
    faults: FaultSettings = field(default_factory=FaultSettings)
    state_file: Path | None = None

    def with_changes(self, **changes: Any) -> EmulatorSettings:
        """A copy with ``changes`` applied; unknown names are refused so a typo cannot pass silently."""
        known = {f.name for f in fields(self)} - {"faults", "state_file"}
        unknown = set(changes) - known
        if unknown:
            raise ValueError(f"unknown emulator setting(s): {', '.join(sorted(unknown))}")
        updated = replace(self, **changes)
        updated.validate()
        return updated

    def validate(self) -> None:
        if self.rate_limit_per_second is not None and self.rate_limit_per_second <= 0:
            raise ValueError("rate_limit_per_second must be positive or None (off)")
        if self.daily_quota is not None and self.daily_quota < 0:
            raise ValueError("daily_quota must be >= 0 or None (off)")
        if self.access_token_ttl_seconds <= 0:
            raise ValueError("access_token_ttl_seconds must be positive")
        if self.max_queued_activities < 0 or self.activity_processing_seconds < 0:
            raise ValueError("max_queued_activities and activity_processing_seconds must be >= 0")
        self.faults.validate()

    def public_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["state_file"] = str(self.state_file) if self.state_file else None
        return data
