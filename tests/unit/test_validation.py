"""Argument checks and payload schemas, applied before any statement runs (no database)."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from queuekit import JobSpec
from queuekit.errors import (
    InvalidArgumentError,
    InvalidSchemaError,
    InvalidWorkerIdError,
    JobKeyError,
    PayloadValidationError,
)
from queuekit.validation import (
    check_flags,
    check_int,
    check_job_spec,
    check_name,
    check_worker_id,
    compile_schema,
    payload_document,
    schema_errors,
)


@pytest.mark.parametrize("name", ["", None, 5, "x" * 256, b"t", "nul\x00byte"], ids=repr)
def test_bad_names(name: Any) -> None:
    with pytest.raises(InvalidArgumentError, match="queue_name"):
        check_name(name, name="queue_name")


def test_names_are_kept_verbatim_and_none_passes_when_optional() -> None:
    for name in ("x" * 255, "  spaced  ", "ünïcödé ✓", "semi;colon"):
        assert check_name(name, name="n") == name
    assert check_name(None, name="n", optional=True) is None


@pytest.mark.parametrize("worker_id", ["", None, 42, b"bytes", ["w"], "w" * 256], ids=repr)
def test_bad_worker_ids(worker_id: Any) -> None:
    with pytest.raises(InvalidWorkerIdError, match="Invalid worker ID"):
        check_worker_id(worker_id)
    assert check_worker_id("w" * 255) == "w" * 255


@pytest.mark.parametrize(
    ("value", "minimum", "message"),
    [
        (True, None, "int, not bool"),
        (1.5, None, "not float"),
        ("3", None, "not str"),
        (0, 1, ">= 1"),
        (2**31, None, "32 bits"),
        (-(2**31) - 1, None, "32 bits"),
    ],
)
def test_bad_ints(value: Any, minimum: int | None, message: str) -> None:
    with pytest.raises(InvalidArgumentError, match=message):
        check_int(value, name="priority", minimum=minimum)


def test_flags_are_a_list_of_names_not_a_string() -> None:
    assert check_flags(None) == ()
    assert check_flags(["a", "b"]) == ("a", "b")
    assert check_flags(("a",)) == ("a",)
    for bad in ("slow", b"slow", 3, ["ok", ""]):
        with pytest.raises(InvalidArgumentError, match="flags"):
            check_flags(bad)


@pytest.mark.parametrize(
    ("payload", "path"),
    [
        ({"x": math.nan}, "$.x"),
        ({"x": math.inf}, "$.x"),
        ({"x": object()}, "$.x"),
        ({"x": {1, 2}}, "$.x"),
        ({1j: 1}, "$"),
        ({3: "x"}, "$"),
    ],
    ids=repr,
)
def test_payloads_json_cannot_carry_are_refused(payload: Any, path: str) -> None:
    with pytest.raises(PayloadValidationError) as caught:
        payload_document("t", payload)
    assert caught.value.errors[0]["path"] == path


@pytest.mark.parametrize("payload", [[1, 2], "text", 5, 1.5, True, ("a",)], ids=repr)
def test_payload_must_be_an_object(payload: Any) -> None:
    with pytest.raises(PayloadValidationError, match="JSON object"):
        payload_document("t", payload)


def test_payload_is_returned_as_plain_json() -> None:
    assert payload_document("t", None)[0] == {}
    assert payload_document("t", {"a": (1, 2), "3": "x"})[0] == {"a": [1, 2], "3": "x"}
    with pytest.raises(PayloadValidationError, match="NUL"):
        payload_document("t", {"k": ["ok", "nul\x00"]})


def test_a_job_spec_is_checked_argument_by_argument() -> None:
    paris = timezone(timedelta(hours=1))
    checked = check_job_spec(
        JobSpec(
            "mail",
            {"to": "ada"},
            run_at=datetime(2030, 1, 1, 1, tzinfo=paris),
            job_key="k",
            flags=["slow"],
        )
    )
    assert checked.job_key_mode == "replace"  # a key alone means replace
    assert checked.run_at == datetime(2030, 1, 1, tzinfo=UTC)
    assert checked.flags == ("slow",)
    assert (
        check_job_spec(JobSpec("t", job_key="k", job_key_mode="preserve-run-at")).job_key_mode
        == "preserve_run_at"
    )
    assert check_job_spec(JobSpec("t")).job_key_mode is None


@pytest.mark.parametrize("mode", ["upsert", "REPLACE", "", "replace ", 3])
def test_unknown_job_key_mode(mode: Any) -> None:
    with pytest.raises(JobKeyError, match="Unknown job_key_mode"):
        check_job_spec(JobSpec("t", job_key="k", job_key_mode=mode))


@pytest.mark.parametrize("mode", ["replace", "preserve_run_at", "unsafe_dedupe"])
def test_mode_without_key(mode: str) -> None:
    with pytest.raises(JobKeyError, match="job-key is required"):
        check_job_spec(JobSpec("t", job_key_mode=mode))


@pytest.mark.parametrize(
    ("spec", "error"),
    [
        (JobSpec(""), InvalidArgumentError),
        (JobSpec("t", max_attempts=0), InvalidArgumentError),
        (JobSpec("t", priority=True), InvalidArgumentError),  # type: ignore[arg-type]
        (JobSpec("t", run_at=datetime(2030, 1, 1)), InvalidArgumentError),
        (JobSpec("t", queue_name="x" * 256), InvalidArgumentError),
        (JobSpec("t", rate_limit_key=""), InvalidArgumentError),
        (JobSpec("t", payload=[1]), PayloadValidationError),
    ],
    ids=["task", "max_attempts", "priority", "run_at", "queue_name", "rate_limit_key", "payload"],
)
def test_bad_job_specs(spec: JobSpec, error: type[Exception]) -> None:
    with pytest.raises(error):
        check_job_spec(spec)


@pytest.mark.parametrize(
    ("schema", "message"),
    [
        ([1], "must be a JSON object"),
        ({"type": "no-such-type"}, "not a valid JSON Schema"),
        ({"const": math.nan}, "not a JSON number"),
        ({"description": "nul\x00"}, "NUL"),
        ({"$ref": "#/$defs/missing"}, "which it does not contain"),
    ],
    ids=["not-object", "meta-schema", "nan", "nul", "dangling-ref"],
)
def test_invalid_schemas(schema: Any, message: str) -> None:
    with pytest.raises(InvalidSchemaError, match=message):
        compile_schema("t", schema)


def test_schema_errors_name_each_path_in_a_stable_order() -> None:
    validator = compile_schema(
        "mail",
        {
            "type": "object",
            "properties": {"to": {"type": "string"}, "n": {"$ref": "#/$defs/count"}},
            "required": ["to"],
            "$defs": {"count": {"type": "integer"}},
        },
    )
    assert schema_errors(validator, {"to": "ada", "n": 1}) == []
    errors = schema_errors(validator, {"to": 5, "n": "x"})
    assert [e["path"] for e in errors] == ["$.n", "$.to"]
    assert "is not of type 'string'" in errors[1]["message"]
    assert [e["path"] for e in schema_errors(validator, {})] == ["$"]
