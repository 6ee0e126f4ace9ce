"""Policy files: the standard one parses; every mistake is refused with its key path."""

from __future__ import annotations

import pytest

from edge.errors import BadInputError
from edge.validation.policy import (
    IMPORTED_POLICY_TOML,
    STANDARD_POLICY_TOML,
    Policy,
    load_policy,
    parse_policy,
)


def test_the_standard_policy_parses_and_defaults_are_sane() -> None:
    policy = parse_policy(STANDARD_POLICY_TOML)
    assert policy.absolute.pd_bar("gun") == 0.55
    assert policy.absolute.pd_bar("blade") == policy.absolute.pd_min["default"]
    assert [s.name for s in policy.gate_specs][0] == "class"
    names = [s.name for s in policy.report_specs]
    assert len(names) == len(set(names)) and "class x size" in names
    imported = parse_policy(IMPORTED_POLICY_TOML)
    assert [s.name for s in imported.report_specs] == ["class"]
    assert imported.absolute.pd_min == {} and imported.non_regression.required
    empty = parse_policy("")
    assert empty == Policy() and empty.non_regression.required
    assert empty.absolute.pd_bar("gun") is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[absolute]\npfa_max = 1.5", "absolute.pfa_max: Input should be less than or equal to 1"),
        ("[absolute]\npd_max = 0.5", "absolute.pd_max: Extra inputs are not permitted"),
        ("[absolute.pd_min]\ngun = 2", "absolute.pd_min: Value error, gun: expected 0 <= Pd <= 1"),
        ("[non_regression]\nrule = 'vibes'", "non_regression.rule: Input should be 'significant_drop'"),
        ("[non_regression]\ndelta = 'small'", "non_regression.delta: Input should be a valid number"),
        ("[non_regression]\nbootstrap_rounds = 5", "non_regression.bootstrap_rounds: Input should be greater than or equal to 100"),
        ("[slices]\ngate = ['class x class']", "slices.gate: Value error, slice 'class x class'"),
        ("[slices]\nreport = 'clutter'", "slices.report: Input should be a valid list"),
        ("[behaviour]\nflip_frames = -1", "behaviour.flip_frames: Input should be greater than or equal to 0"),
        ("[latency]\np95_ms = 100", "latency.p95_ms: Extra inputs are not permitted"),
        ("version = 2", "version: Input should be 1"),
        ("colour = 'blue'", "colour: Extra inputs are not permitted"),
        ("[absolute\npfa_max = 1", "not valid TOML"),
    ],
)  # fmt: skip
def test_mistakes_are_refused_with_their_key_path(text: str, expected: str) -> None:
    with pytest.raises(BadInputError) as info:
        parse_policy(text, "suite/policy.toml")
    assert info.value.message.startswith("suite/policy.toml: ")
    assert expected in info.value.message


def test_every_error_is_listed_at_once() -> None:
    with pytest.raises(BadInputError) as info:
        parse_policy("[absolute]\npfa_max = 3\nmap50_min = -1\n[latency]\np95_ms_max = 0")
    message = info.value.message
    assert "3 error(s)" in message
    for key in ("absolute.pfa_max", "absolute.map50_min", "latency.p95_ms_max"):
        assert key in message


def test_pd_bars_must_name_classes_of_the_suite() -> None:
    policy = parse_policy("[absolute.pd_min]\ndefault = 0.5\ngunn = 0.9")
    policy.check_classes(["gunn"], "p.toml")
    with pytest.raises(
        BadInputError, match=r"p.toml: absolute.pd_min.gunn: not a class of the suite"
    ):
        policy.check_classes(["gun", "knife"], "p.toml")


def test_load_policy_reads_files_and_says_why_not(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "policy.toml"
    path.write_text("[latency]\np95_ms_max = 250\n")
    assert load_policy(path).latency.p95_ms_max == 250
    with pytest.raises(BadInputError, match="cannot read the policy"):
        load_policy(tmp_path / "missing.toml")
    path.write_bytes(b"\xff\xfe not text")
    with pytest.raises(BadInputError, match="cannot read the policy"):
        load_policy(path)
