"""Settings are checked when any command starts: one line per bad value, naming the
variable and what it accepts, before any work is done."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from cjm_pipeline.settings import SettingsError, get_settings, unknown_variables

CJM = Path(sys.executable).with_name("cjm")


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("CJM_SESSION_GAP_MINUTES", "thirty", "a whole number greater than 0"),
        ("CJM_FUNNEL_PERIOD", "fortnight", "one of 'day', 'week' or 'month'"),
        ("CJM_DUCKDB_MEMORY_LIMIT", "lots", "a size such as 3GB"),
        ("CJM_TIME_ZONE", "Mars/Olympus", "an IANA time zone name"),
        ("CJM_KEEP_SNAPSHOTS", "0", "a whole number at least 1"),
        ("CJM_MAX_QUARANTINE_SHARE", "2", "a number at least 0 and at most 1"),
        ("CJM_MAX_FILE_BYTES", "huge", "a size in bytes"),
        ("CJM_MAX_FILE_BYTES", "0", "a size of at least 1KiB"),
        ("CJM_MAX_LINE_BYTES", "1000B", "a size of at least 1KiB"),
    ],
)
def test_a_bad_value_is_one_line_naming_the_variable(
    variable: str, value: str, expected: str, tmp_path: Path
) -> None:
    env = {**os.environ, variable: value, "CJM_DATA_DIR": str(tmp_path)}
    done = subprocess.run(
        [str(CJM), "summary"], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"error: {variable}={value!r} is not valid: expected {expected}")
    assert "Traceback" not in done.stdout + done.stderr


def test_every_bad_value_is_named_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CJM_SESSION_GAP_MINUTES", "thirty")
    monkeypatch.setenv("CJM_JOURNEY_GAP_DAYS", "-3")
    with pytest.raises(SettingsError) as raised:
        get_settings()
    lines = str(raised.value).splitlines()
    assert [line.split("=")[0] for line in lines] == [
        "CJM_SESSION_GAP_MINUTES",
        "CJM_JOURNEY_GAP_DAYS",
    ]


def test_sizes_take_units_and_memory_limits_take_duckdb_forms(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CJM_MAX_FILE_BYTES", "512MiB")
    monkeypatch.setenv("CJM_DUCKDB_MEMORY_LIMIT", "80%")
    settings = get_settings()
    assert settings.max_file_bytes == 512 * 1024 * 1024
    assert settings.duckdb_memory_limit == "80%"


def test_a_misspelt_variable_is_reported_with_the_likely_name() -> None:
    lines = unknown_variables({"CJM_SESION_GAP_MINUTES": "20", "CJM_SCHEDULE": "0 3 * * *"})
    assert lines == [
        "CJM_SESION_GAP_MINUTES is not a setting of cjm and is ignored "
        "(did you mean CJM_SESSION_GAP_MINUTES?)"
    ]


def test_the_deny_list_adds_to_the_built_in_placeholders(monkeypatch) -> None:
    monkeypatch.setenv("CJM_IDENTITY_DENY_LIST", " Test-Device , shared@example.com")
    values = get_settings().identity_deny_values
    assert {"test-device", "shared@example.com", "undefined", "true", "0"} <= values
