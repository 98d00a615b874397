"""`${VAR}` in servers.json entries: read from the environment, written back in anything shown."""

from __future__ import annotations

import logging

import pytest

from agents.mcp_variables import Redactor, ServerVariableError, expand

ENVIRON = {"TOKEN": "s3cret", "EMPTY": "", "HOST": "db.internal"}


def test_variables_are_read_from_the_environment_with_defaults_where_unset_or_empty() -> None:
    redactor = Redactor()

    values = [
        expand("api", "headers['Authorization']", value, ENVIRON, redactor)
        for value in ("Bearer ${TOKEN}", "https://${HOST}:${PORT:-8443}/mcp", "${EMPTY:-none}", "[${EMPTY}]", "$TOKEN")
    ]

    assert values == ["Bearer s3cret", "https://db.internal:8443/mcp", "none", "[]", "$TOKEN"]


def test_an_unset_variable_without_a_default_names_the_entry_the_key_and_the_variable() -> None:
    with pytest.raises(ServerVariableError) as caught:
        expand("api", "headers['Authorization']", "Bearer ${API_TOKEN}", ENVIRON, Redactor())

    assert str(caught.value) == (
        "the entry 'api' uses ${API_TOKEN} in headers['Authorization'], and API_TOKEN is not set in "
        "planner-mcp's environment; set it where planner-mcp starts, or write ${API_TOKEN:-default}"
    )


def test_values_read_are_written_back_as_their_variables_in_text_and_log_records() -> None:
    redactor = Redactor()
    expand("api", "url", "https://${HOST}/mcp?key=${TOKEN}", ENVIRON, redactor)
    record = logging.LogRecord("httpx2", logging.INFO, __file__, 1, "HTTP Request: %s %s", ("POST", "x"), None)
    record.args = ("POST", "https://db.internal/mcp?key=s3cret")

    assert redactor.redact("refused https://db.internal/mcp?key=s3cret") == "refused https://${HOST}/mcp?key=${TOKEN}"
    assert redactor.filter(record) is True
    assert record.getMessage() == "HTTP Request: POST https://${HOST}/mcp?key=${TOKEN}"
