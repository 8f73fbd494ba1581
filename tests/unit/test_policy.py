"""The policy tag value: presets, named policies, the inline grammar, canonical text, words, and errors.

Every error an operator can meet must name the bad word and say what is allowed, because the message is
all they see (in the run report and the log line) when a cluster is skipped.
"""

from __future__ import annotations

import dataclasses
import re

import pytest
from snapshot_scheduler.errors import SnapshotSchedulerError
from snapshot_scheduler.policy import (
    ALL,
    PRESETS,
    Duration,
    Every,
    Policy,
    PolicyError,
    Retention,
    check_name,
    is_off,
    parse_policy,
)

# What an RDS tag value may hold (rds-facts.md): letters, digits, white space and _ . : / = + - @, <= 256.
RDS_TAG_VALUE = re.compile(r"^[\w\s.:/=+\-@]{0,256}$")


def unnamed(policy: Policy) -> Policy:
    return dataclasses.replace(policy, name=None)


# --- presets ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "every", "retention"),
    [
        ("hourly", Every.H1, Retention(hourly=24, daily=7)),
        ("daily", Every.D1, Retention(daily=7)),
        ("gfs", Every.D1, Retention(daily=7, weekly=4, monthly=12, yearly=7)),
    ],
)
def test_preset_is_what_the_issue_defines(name: str, every: Every, retention: Retention) -> None:
    policy = parse_policy(name)

    assert policy.every is every
    assert policy.retention == retention
    assert policy.name == name
    assert (policy.at, policy.tz) == ("03:00", "UTC")


def test_presets_are_exactly_hourly_daily_and_gfs() -> None:
    assert set(PRESETS) == {"hourly", "daily", "gfs"}


def test_preset_takes_the_deployments_default_time_and_zone() -> None:
    policy = parse_policy("daily", at="01:30", tz="Europe/Berlin")

    assert (policy.at, policy.tz) == ("01:30", "Europe/Berlin")


def test_preset_name_is_case_insensitive() -> None:
    assert unnamed(parse_policy("GFS")) == unnamed(parse_policy("gfs"))


def test_preset_name_with_surrounding_spaces_is_the_preset() -> None:
    assert unnamed(parse_policy("  daily ")) == unnamed(parse_policy("daily"))


# --- named policies -----------------------------------------------------------------------------------------


def test_named_policy_resolves_to_its_text() -> None:
    policy = parse_policy("gold", {"gold": "every=4h keep-hourly=12 keep-daily=30"})

    assert policy.name == "gold"
    assert policy.every is Every.H4
    assert policy.retention == Retention(hourly=12, daily=30)


def test_named_policy_overrides_a_preset_of_the_same_name() -> None:
    policy = parse_policy("daily", {"daily": "every=1d keep-daily=30"})

    assert policy.retention == Retention(daily=30)


def test_named_override_of_a_preset_wins_whatever_the_case_of_the_tag() -> None:
    policy = parse_policy("Daily", {"daily": "every=1d keep-daily=30"})

    assert policy.retention == Retention(daily=30)


def test_named_policy_uses_the_deployment_defaults_it_leaves_unsaid() -> None:
    policy = parse_policy("gold", {"gold": "keep-daily=30"}, at="22:15", tz="America/New_York")

    assert (policy.every, policy.at, policy.tz) == (Every.D1, "22:15", "America/New_York")


def test_named_policy_name_matches_whatever_its_case() -> None:
    assert parse_policy("GOLD", {"gold": "keep-daily=30"}).retention == Retention(daily=30)


def test_named_policy_text_may_be_a_presets_name_but_not_another_named_policy() -> None:
    named = {"standard": "gfs", "gold": "standard"}

    assert parse_policy("standard", named).retention == parse_policy("gfs").retention
    with pytest.raises(PolicyError) as caught:
        parse_policy("gold", named)
    assert "gold" in str(caught.value) and "standard" in str(caught.value)


def test_invalid_named_policy_error_names_the_policy_and_its_bad_word() -> None:
    with pytest.raises(PolicyError) as caught:
        parse_policy("gold", {"gold": "every=1d keep-daily=seven"})

    message = str(caught.value)
    assert "gold" in message
    assert "keep-daily=seven" in message
    assert "whole number" in message


def test_unknown_name_lists_presets_and_the_deployments_names() -> None:
    with pytest.raises(PolicyError) as caught:
        parse_policy("platinum", {"gold": "keep-daily=7", "silver": "keep-daily=3"})

    message = str(caught.value)
    for word in ("platinum", "hourly", "daily", "gfs", "gold", "silver", "key=value"):
        assert word in message


# --- inline grammar -----------------------------------------------------------------------------------------


def test_inline_defaults_are_daily_at_the_deployment_time_in_utc_on_sunday() -> None:
    policy = parse_policy("keep-last=3")

    assert policy == Policy(every=Every.D1, at="03:00", on="sun", tz="UTC", retention=Retention(last=3))


@pytest.mark.parametrize(
    ("text", "every"),
    [
        ("1h", Every.H1),
        ("2h", Every.H2),
        ("3h", Every.H3),
        ("4h", Every.H4),
        ("6h", Every.H6),
        ("8h", Every.H8),
        ("12h", Every.H12),
        ("1d", Every.D1),
        ("1w", Every.W1),
    ],
)
def test_every_accepts_each_documented_interval(text: str, every: Every) -> None:
    policy = parse_policy(f"every={text} keep-last=1")

    assert policy.every is every
    assert policy.every.interval.total_seconds() == every.value * 3600


def test_at_on_and_tz_are_read() -> None:
    policy = parse_policy("every=1w on=wed at=18:45 tz=Asia/Kolkata keep-weekly=8")

    assert (policy.every, policy.on, policy.at, policy.tz) == (Every.W1, "wed", "18:45", "Asia/Kolkata")
    assert policy.anchor == (18, 45)


@pytest.mark.parametrize("day", ["mon", "tue", "wed", "thu", "fri", "sat", "sun", "MON", "Fri"])
def test_on_accepts_every_weekday_in_any_case(day: str) -> None:
    assert parse_policy(f"every=1w on={day} keep-weekly=2").on == day.lower()


def test_keys_are_case_insensitive_and_spaces_are_free() -> None:
    messy = parse_policy("  EVERY=1H    Keep-Hourly=24\tKEEP-DAILY=7  ")

    assert messy == parse_policy("every=1h keep-hourly=24 keep-daily=7")


def test_word_order_does_not_matter() -> None:
    assert parse_policy("keep-daily=7 tz=Europe/Berlin every=1d") == parse_policy(
        "every=1d tz=Europe/Berlin keep-daily=7"
    )


@pytest.mark.parametrize(
    ("word", "retention"),
    [
        ("keep-last=5", Retention(last=5)),
        ("keep-hourly=24", Retention(hourly=24)),
        ("keep-daily=7", Retention(daily=7)),
        ("keep-weekly=4", Retention(weekly=4)),
        ("keep-monthly=12", Retention(monthly=12)),
        ("keep-yearly=7", Retention(yearly=7)),
        ("keep-daily=all", Retention(daily=ALL)),
        ("keep-yearly=ALL", Retention(yearly=ALL)),
        ("keep-last=100000", Retention(last=100000)),
        ("keep-within=1y2m3d4h", Retention(within=Duration(1, 2, 3, 4))),
        ("keep-within=7d", Retention(within=Duration(days=7))),
        ("keep-within=2m2h", Retention(within=Duration(months=2, hours=2))),
        ("keep-within=13d23h", Retention(within=Duration(days=13, hours=23))),
        ("keep-within=36h", Retention(within=Duration(hours=36))),
        ("keep-within-hourly=2d", Retention(within_hourly=Duration(days=2))),
        ("keep-within-daily=7d", Retention(within_daily=Duration(days=7))),
        ("keep-within-weekly=1m", Retention(within_weekly=Duration(months=1))),
        ("keep-within-monthly=1y", Retention(within_monthly=Duration(years=1))),
        ("keep-within-yearly=75y", Retention(within_yearly=Duration(years=75))),
    ],
)
def test_each_retention_word_is_read(word: str, retention: Retention) -> None:
    assert parse_policy(word).retention == retention


def test_duration_units_are_case_insensitive_like_keys() -> None:
    assert parse_policy("keep-within=1Y7D").retention.within == Duration(years=1, days=7)


def test_all_retention_words_combine() -> None:
    policy = parse_policy(
        "keep-last=2 keep-hourly=3 keep-daily=4 keep-weekly=5 keep-monthly=6 keep-yearly=all keep-within=1d "
        "keep-within-hourly=1h keep-within-daily=2d keep-within-weekly=3d keep-within-monthly=1m "
        "keep-within-yearly=2y"
    )

    assert policy.retention == Retention(
        last=2,
        hourly=3,
        daily=4,
        weekly=5,
        monthly=6,
        yearly=ALL,
        within=Duration(days=1),
        within_hourly=Duration(hours=1),
        within_daily=Duration(days=2),
        within_weekly=Duration(days=3),
        within_monthly=Duration(months=1),
        within_yearly=Duration(years=2),
    )


@pytest.mark.parametrize("text", [None, "off", "OFF", " Off "])
def test_off_and_no_tag_mean_not_managed(text: str | None) -> None:
    assert is_off(text)


@pytest.mark.parametrize("text", ["daily", "keep-last=1", "", "offline"])
def test_anything_else_is_not_off(text: str) -> None:
    assert not is_off(text)


# --- canonical text -----------------------------------------------------------------------------------------

ROUND_TRIP = [
    "keep-last=1",
    "every=1h keep-hourly=24 keep-daily=7",
    "every=2h at=01:30 tz=Europe/Berlin keep-hourly=12",
    "every=12h at=23:59 tz=America/New_York keep-daily=all",
    "every=1w on=mon at=04:00 tz=Australia/Lord_Howe keep-weekly=52 keep-yearly=all",
    "every=1w keep-weekly=4",
    "keep-within=1y2m3d4h keep-within-daily=7d keep-within-weekly=1m keep-within-monthly=1y keep-within-yearly=75y",
    "keep-within-hourly=2d keep-last=3",
    "KEEP-DAILY=007 every=1D",
]


@pytest.mark.parametrize("text", ROUND_TRIP)
def test_spec_parses_back_to_the_same_policy(text: str) -> None:
    policy = parse_policy(text, at="05:00", tz="Asia/Tokyo")

    assert parse_policy(policy.spec()) == policy


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_preset_spec_parses_back_to_the_same_schedule_and_retention(name: str) -> None:
    policy = parse_policy(name)

    assert parse_policy(policy.spec()) == unnamed(policy)


def test_spec_is_canonical_whatever_the_spelling() -> None:
    one = parse_policy("keep-daily=7 every=1d", at="03:00", tz="UTC")
    other = parse_policy("  EVERY=1d AT=03:00 TZ=UTC KEEP-DAILY=07 ")

    assert one.spec() == other.spec() == "every=1d at=03:00 tz=UTC keep-daily=7"


def test_spec_spells_out_the_deployment_defaults_so_orphans_do_not_depend_on_them() -> None:
    policy = parse_policy("keep-daily=7", at="01:15", tz="Europe/Berlin")

    assert "at=01:15" in policy.spec()
    assert "tz=Europe/Berlin" in policy.spec()
    assert parse_policy(policy.spec(), at="09:00", tz="UTC") == policy


def test_spec_names_on_only_for_weekly_policies() -> None:
    assert "on=" not in parse_policy("every=1d keep-daily=7").spec()
    assert "on=sun" in parse_policy("every=1w keep-weekly=4").spec()


@pytest.mark.parametrize("text", [*ROUND_TRIP, *sorted(PRESETS)])
def test_spec_is_a_valid_rds_tag_value(text: str) -> None:
    assert RDS_TAG_VALUE.match(parse_policy(text).spec())


LONG_BUT_LEGAL = (
    "keep-last=48 keep-hourly=72 keep-daily=31 keep-weekly=53 keep-monthly=120 keep-yearly=all "
    "keep-within=3d12h keep-within-hourly=7d keep-within-daily=3m keep-within-weekly=1y6m "
    "keep-within-monthly=10y keep-within-yearly=99y"
)


@pytest.mark.parametrize(
    ("text", "tz"),
    [
        (LONG_BUT_LEGAL, "UTC"),
        (LONG_BUT_LEGAL, "America/Argentina/Buenos_Aires"),
        (
            "every=1w on=mon at=23:59 tz=America/Argentina/ComodRivadavia keep-last=48 keep-hourly=72 "
            "keep-daily=31 keep-weekly=53 keep-monthly=120 keep-yearly=all keep-within=3d12h "
            "keep-within-hourly=7d keep-within-daily=3m keep-within-weekly=1y6m",
            "UTC",
        ),
    ],
)
def test_every_accepted_policy_has_a_spec_that_fits_in_a_tag_value(text: str, tz: str) -> None:
    # Given a long but legal tag value (at most 256 characters)
    assert len(text) <= 256

    # When it is parsed, then either its canonical text (which goes on every snapshot as a tag value) fits,
    # or it is refused with a message saying why
    try:
        policy = parse_policy(text, tz=tz)
    except PolicyError as error:
        assert "256" in str(error)
        return
    assert RDS_TAG_VALUE.match(policy.spec())


def test_policy_whose_canonical_text_is_too_long_is_refused_naming_the_limit() -> None:
    with pytest.raises(PolicyError) as caught:
        parse_policy(LONG_BUT_LEGAL, tz="America/Argentina/Buenos_Aires")

    assert "256" in str(caught.value)
    assert "keep-" in str(caught.value)


# --- in words -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        ("daily", ["every day at 03:00 UTC", "7 days"]),
        ("hourly", ["every hour", "24 hours", "7 days"]),
        ("gfs", ["7 days", "4 ISO weeks", "12 months", "7 years"]),
        ("every=1w on=fri at=18:30 tz=America/New_York keep-weekly=8", ["Friday", "18:30", "America/New_York"]),
        ("every=6h at=01:00 keep-last=4", ["every 6 hours", "the last 4 snapshots"]),
        ("keep-daily=all", ["every day"]),
        ("keep-within=1y2m", ["within 1y2m of the newest"]),
        ("keep-within-weekly=1m", ["weekly", "within 1m"]),
    ],
)
def test_describe_puts_the_policy_in_words(text: str, fragments: list[str]) -> None:
    words = parse_policy(text).describe()

    for fragment in fragments:
        assert fragment in words


# --- errors: the table of bad tag values --------------------------------------------------------------------

BAD_VALUES = [
    # (tag value, fragments the message must hold: the bad word, and what is allowed)
    pytest.param("daily,7", ["','", "letters, digits, spaces"], id="comma"),
    pytest.param("every=1d;keep-daily=7", ["';'", "spaces"], id="semicolon"),
    pytest.param('keep-daily="7"', ["'\"'", "letters, digits"], id="quotes"),
    pytest.param("keep-daily=7 # nightly", ["'#'"], id="hash"),
    pytest.param("keep-daily=7 (gfs)", ["'('", "')'"], id="parentheses"),
    pytest.param("keep-last=3 " + "x" * 250, ["256"], id="too-long"),
    pytest.param("", ["empty", "preset"], id="empty"),
    pytest.param("   ", ["empty"], id="blank"),
    pytest.param("platinum", ["platinum", "hourly", "daily", "gfs"], id="unknown-name"),
    pytest.param("weekly", ["weekly", "known names"], id="weekly-is-not-a-preset"),
    pytest.param("daily weekly", ["'daily'", "key=value"], id="two-names"),
    pytest.param("daily keep-daily=3", ["'daily'", "key=value"], id="name-mixed-with-words"),
    pytest.param("every=1d color=red keep-daily=7", ["color=red", "keep-daily", "every"], id="unknown-key"),
    pytest.param("keep-days=7", ["keep-days=7", "keep-daily"], id="misspelt-key"),
    pytest.param("=7", ["=7", "allowed keys"], id="no-key"),
    pytest.param("keep-daily=7 keep-daily=8", ["keep-daily", "twice"], id="duplicate-key"),
    pytest.param("every=1d EVERY=1h keep-last=1", ["every", "twice"], id="duplicate-key-other-case"),
    pytest.param("every=5h keep-daily=7", ["every=5h", "1h 2h 3h 4h 6h 8h 12h 1d 1w"], id="every-5h"),
    pytest.param("every=24h keep-daily=7", ["every=24h", "1d"], id="every-24h"),
    pytest.param("every=daily keep-daily=7", ["every=daily", "1h"], id="every-word"),
    pytest.param("every=30m keep-daily=7", ["every=30m", "1h"], id="every-minutes"),
    pytest.param("at=3am keep-daily=7", ["at=3am", "HH:MM"], id="at-3am"),
    pytest.param("at=24:00 keep-daily=7", ["at=24:00", "23:59"], id="at-24"),
    pytest.param("at=12:60 keep-daily=7", ["at=12:60", "HH:MM"], id="at-minute-60"),
    pytest.param("at=3:00 keep-daily=7", ["at=3:00", "HH:MM"], id="at-one-digit-hour"),
    pytest.param("every=1w on=funday keep-weekly=4", ["on=funday", "mon", "sun"], id="on-not-a-day"),
    pytest.param("every=1w on=monday keep-weekly=4", ["on=monday", "mon"], id="on-long-name"),
    pytest.param("on=mon keep-daily=7", ["on=mon", "every=1w"], id="on-without-weekly-default"),
    pytest.param("every=1d on=mon keep-daily=7", ["on=mon", "every=1w", "every=1d"], id="on-with-daily"),
    pytest.param("every=1h on=sun keep-hourly=24", ["on=sun", "every=1w"], id="on-with-hourly"),
    pytest.param("tz=Mars/Olympus_Mons keep-daily=7", ["tz=Mars/Olympus_Mons", "IANA", "Europe/Berlin"], id="tz"),
    pytest.param("tz=Berlin keep-daily=7", ["tz=Berlin", "Area/City"], id="tz-city-only"),
    pytest.param("tz=+01:00 keep-daily=7", ["tz=+01:00", "IANA"], id="tz-offset"),
    pytest.param("tz=../../etc/passwd keep-daily=7", ["tz=../../etc/passwd", "IANA"], id="tz-path"),
    pytest.param("tz=America/Indiana keep-daily=7", ["America/Indiana is a group of 8", "Knox"], id="tz-directory"),
    pytest.param("tz=America/Argentina/ keep-daily=7", ["America/Argentina is a group of"], id="tz-directory-slash"),
    pytest.param("tz=GMT keep-daily=7", ["tz=GMT", "legacy alias"], id="tz-legacy-alias"),
    pytest.param("tz=europe/berlin keep-daily=7", ["did you mean Europe/Berlin?"], id="tz-case"),
    pytest.param("tz=posix/Europe/Berlin keep-daily=7", ["tz=posix/Europe/Berlin", "IANA"], id="tz-host-only-file"),
    pytest.param("tz=Europe/Berlin/ keep-daily=7", ["tz=Europe/Berlin/", "IANA"], id="tz-trailing-slash"),
    pytest.param("keep-daily=0", ["keep-daily=0", "whole number", "all"], id="count-zero"),
    pytest.param("keep-daily=-1", ["keep-daily=-1", "whole number", "all"], id="count-negative"),
    pytest.param("keep-daily=abc", ["keep-daily=abc", "whole number", "all"], id="count-word"),
    pytest.param("keep-last=1.5", ["keep-last=1.5", "whole number"], id="count-fraction"),
    pytest.param("keep-hourly=100001", ["keep-hourly=100001", "100000"], id="count-too-big"),
    pytest.param("keep-within=4h3d", ["keep-within=4h3d", "y m d h", "in that order"], id="duration-order"),
    pytest.param("keep-within=7", ["keep-within=7", "y m d h"], id="duration-no-unit"),
    pytest.param("keep-within=1w", ["keep-within=1w", "y m d h"], id="duration-weeks"),
    pytest.param("keep-within=0d", ["keep-within=0d", "zero"], id="duration-zero"),
    pytest.param("keep-within-daily=0y0m0d0h", ["keep-within-daily=0y0m0d0h", "zero"], id="duration-all-zero"),
    pytest.param("keep-within=", ["keep-within=", "key=value"], id="duration-empty"),
    pytest.param("keep-within-monthly=1.5m", ["keep-within-monthly=1.5m", "y m d h"], id="duration-fraction"),
    pytest.param("every=1d at=03:00", ["keep-last", "keep-daily", "keep-within"], id="no-retention"),
    pytest.param("every=1h", ["keep"], id="schedule-only"),
    pytest.param("keep-daily", ["'keep-daily'", "key=value"], id="key-without-value"),
]


@pytest.mark.parametrize(("text", "fragments"), BAD_VALUES)
def test_bad_tag_value_is_rejected_with_a_message_naming_the_word_and_what_is_allowed(
    text: str, fragments: list[str]
) -> None:
    with pytest.raises(PolicyError) as caught:
        parse_policy(text)

    message = str(caught.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} missing from: {message}"
    assert "\n" not in message  # one log line, one report reason


def test_policy_error_is_a_snapshot_scheduler_error() -> None:
    assert issubclass(PolicyError, SnapshotSchedulerError)


def test_digits_of_other_scripts_are_a_policy_error_not_a_crash() -> None:
    for text in ("keep-daily=²", "keep-daily=٣", "at=٠٣:00 keep-last=1", "keep-within=٣d"):
        with pytest.raises(PolicyError):
            parse_policy(text)


def test_utc_in_any_case_is_utc() -> None:
    assert parse_policy("tz=utc keep-last=1").tz == "UTC"


def test_a_policy_name_with_a_trailing_newline_cannot_be_selected_by_a_tag() -> None:
    with pytest.raises(PolicyError, match="cannot be selected by a tag"):
        check_name("gold\n")
