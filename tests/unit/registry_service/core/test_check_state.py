"""A check's thresholds over its probes (pure): failures in a row turn it FAILING, passes in a
row turn it PASSING again; a node is FAILING when one of its checks is."""

from __future__ import annotations

from registry_service.core.check_state import CheckState, combined, starting_health
from registry_service.domain import Check, CheckKind, Health

CHECK = Check(CheckKind.TCP, failures_before_failing=3, passes_before_passing=2)


def _observe(state: CheckState, probes: str) -> list[bool]:
    """`probes` as p (passed) and f (failed); whether each changed the check's health."""
    return [state.observe(probe == "p") for probe in probes]


def test_failures_in_a_row_turn_it_failing_and_a_pass_in_between_starts_over():
    state = CheckState(CHECK, Health.PASSING)
    assert _observe(state, "ffpff") == [False] * 5 and state.health is Health.PASSING
    assert _observe(state, "f") == [True] and state.health is Health.FAILING
    assert _observe(state, "f") == [False]


def test_passes_in_a_row_turn_it_passing_again():
    state = CheckState(CHECK, Health.FAILING)
    assert _observe(state, "pfp") == [False] * 3 and state.health is Health.FAILING
    assert _observe(state, "p") == [True] and state.health is Health.PASSING


def test_a_check_not_known_yet_takes_its_first_probe_as_it_is_which_is_no_change():
    state = CheckState(CHECK, None)
    assert _observe(state, "f") == [False] and state.health is Health.FAILING
    assert _observe(state, "pp") == [False, True]


def test_a_node_is_failing_when_one_check_fails_and_unknown_while_one_is_unknown():
    passing, failing, unknown = (
        CheckState(CHECK, Health.PASSING),
        CheckState(CHECK, Health.FAILING),
        CheckState(CHECK, None),
    )
    assert combined([passing, passing]) is Health.PASSING
    assert combined([passing, failing]) is Health.FAILING
    assert combined([passing, unknown]) is None
    assert combined([failing, unknown]) is Health.FAILING


def test_a_node_taken_over_starts_from_its_published_health():
    assert starting_health(Health.FAILING) is Health.FAILING
    assert starting_health(Health.PASSING) is Health.PASSING
    assert starting_health(Health.UNCHECKED) is Health.PASSING
