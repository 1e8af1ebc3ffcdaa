"""A refusal's message with its field problems, each said once, for people."""

from __future__ import annotations

from jupyter_tasks.exceptions import said_with_errors


def test_a_problem_the_message_says_by_its_short_name_is_not_said_again() -> None:
    # the dashboard's fork showed "value: expected int, got str; params.value: expected
    # int, got str"
    message = "invalid parameters for echo: value: expected int, got str"
    errors = [{"field": "params.value", "message": "expected int, got str"}]
    assert said_with_errors(message, errors) == message


def test_a_field_is_matched_by_its_whole_name_only() -> None:
    message = "invalid: data: expected int, got str"
    errors = [{"field": "params.a", "message": "expected int, got str"}]
    assert said_with_errors(message, errors) == f"{message}; params.a: expected int, got str"
