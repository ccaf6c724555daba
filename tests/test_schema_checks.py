"""The test-only memo of params' meta-schema checks (tests/schema_checks.py) changes no outcome:
each value is still validated, and a schema that is itself invalid still fails, every time."""

from __future__ import annotations

import jsonschema
import pytest
from airflow.sdk import Param
from airflow.sdk.exceptions import ParamValidationError
from jsonschema.exceptions import SchemaError, ValidationError

BATCH_SIZE = {"type": "integer", "minimum": 1, "maximum": 500}


def test_the_memo_is_what_params_use_in_the_tests() -> None:
    assert jsonschema.Draft202012Validator.check_schema.__name__ == "_check_once"


@pytest.mark.parametrize("value", [1, 500, 250])
def test_a_valid_value_still_resolves(value: int) -> None:
    assert Param(10, **BATCH_SIZE).resolve(value) == value


@pytest.mark.parametrize("value", [0, 501, "ten"])
def test_an_invalid_value_is_still_refused_after_its_schema_was_checked(value: object) -> None:
    Param(10, **BATCH_SIZE).resolve(10)  # the schema's check is memoised from here on
    with pytest.raises(ParamValidationError):
        Param(10, **BATCH_SIZE).resolve(value)
    with pytest.raises(ValidationError):
        jsonschema.validate(value, BATCH_SIZE)


def test_an_invalid_schema_fails_every_time() -> None:
    for _ in range(2):
        with pytest.raises(SchemaError):
            jsonschema.validate(1, {"type": "integer", "minimum": "one"})
