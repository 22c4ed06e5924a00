"""Alarm events, event figures and false-alarm-budget thresholds against cases worked by hand
(the arithmetic is in the comments)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from training.windows.events import alarm_counts, event_figures
from training.windows.operating_points import (
    FalseAlarmBudget,
    budget_threshold,
    poisson_interval,
    predict,
)


def _runs_by_loop(parts: list[list[float]], threshold: float) -> int:
    """Alarm events counted the slow, obvious way."""
    events = 0
    for part in parts:
        previous = False
        for score in part:
            flagged = score > threshold
            events += flagged and not previous
            previous = flagged
    return events


def test_alarm_events_are_runs_of_flagged_steps_and_stop_at_part_boundaries() -> None:
    parts = [[0, 5, 0, 5, 5, 0], [5, 5], [1, 3, 1]]
    # At 1: runs {1}, {3,4} in the first part, {0,1} in the second, {1} in the third: 4.
    # At 4: the same but the third part's 3 is not above 4: 3. At 5: nothing. At 0: the
    # first part flags 1, 3-4 (2 runs), the second 1 run, the third all 3 steps (1 run): 4.
    assert alarm_counts(parts, [1, 4, 5, 0]).tolist() == [4, 3, 0, 4]
    # Two parts that would join into one run if concatenated stay two events.
    assert alarm_counts([[0, 9], [9, 0]], [1]).tolist() == [2]


def test_alarm_counts_agree_with_a_plain_loop_on_random_scores() -> None:
    rng = np.random.default_rng(3)
    parts = [rng.gamma(2.0, size=n).tolist() for n in (50, 1, 17, 200)]
    thresholds = np.linspace(0, 8, 41)
    expected = [_runs_by_loop(parts, float(t)) for t in thresholds]
    assert alarm_counts(parts, thresholds).tolist() == expected


def test_event_figures_by_hand() -> None:
    # Part 1 (10 steps): labelled segment [3, 6); flagged 1, 4-5, 8 -> runs {1}, {4,5}, {8};
    # {4,5} touches the segment, so 2 false alarms; the segment's first alarm is at step 4,
    # 1 step after its start. Part 2 (6 steps): segments [0, 2) and [4, 6); flagged 1 and 5:
    # both segments alarmed after 1 step; no false alarm.
    scores = [
        np.array([0, 2, 0, 0, 2, 2, 0, 0, 2, 0], dtype=float),
        np.array([0, 2, 0, 0, 0, 2], dtype=float),
    ]
    labels = [
        np.array([0, 0, 0, 1, 1, 1, 0, 0, 0, 0], dtype=bool),
        np.array([1, 1, 0, 0, 1, 1], dtype=bool),
    ]
    figures = event_figures(scores, labels, threshold=1.0)
    assert (figures.alarms, figures.false_alarms) == (5, 2)
    # Normal steps: 7 in part 1, 2 in part 2 = 9; flagged among them: steps 1 and 8 = 2.
    assert (figures.normal_steps, figures.normal_flagged) == (9, 2)
    assert [(s.start, s.end, s.first_alarm) for s in figures.segments] == [
        (3, 6, 1),
        (10, 12, 1),
        (14, 16, 1),
    ]
    metrics = figures.as_metrics(step_seconds=60.0)
    # 2 false alarms in 9 normal steps: 2 / 9 * 1440 = 320 per 1,440 steps; 9 one-minute
    # steps are 0.15 h, so 2 / 0.15 = 13.33 per hour.
    assert metrics["false_alarms_per_1440_steps"] == pytest.approx(320.0)
    assert metrics["false_alarms_per_hour"] == pytest.approx(2 / 0.15)
    assert metrics["segments_alarmed"] == 1.0
    assert metrics["first_alarm_steps_median"] == 1.0
    assert metrics["normal_flagged_share"] == pytest.approx(2 / 9)
    assert "false_alarms_per_hour" not in figures.as_metrics(step_seconds=None)


def test_a_segment_never_alarmed_has_no_first_alarm() -> None:
    labels = [np.array([0, 1, 1, 0, 0, 1, 1, 1], dtype=bool)]
    scores = [np.array([0, 0, 0, 0, 0, 0, 0, 3], dtype=float)]
    figures = event_figures(scores, labels, threshold=1.0)
    # Segment [1, 3) is missed; [5, 8) is alarmed at step 7, 2 steps after its start.
    assert [s.first_alarm for s in figures.segments] == [None, 2]
    metrics = figures.as_metrics(None)
    assert metrics["segments_alarmed"] == 0.5
    assert metrics["first_alarm_steps_mean"] == 2.0
    assert metrics["false_alarms"] == 0.0


def test_the_budget_threshold_is_the_lowest_one_within_the_allowed_events() -> None:
    # 20 steps, budget 1 per 10 steps: 2 events allowed. Peaks 9, 8, 7, 6 in separate runs.
    part = np.zeros(20)
    part[[2, 6, 10, 14]] = [9, 8, 7, 6]
    budget = FalseAlarmBudget(1.0, 10, "10 steps")
    fitted = budget_threshold([part], budget)
    # Above 8 one event, above 7 two events, above 6 three: the lowest meeting it is 7.
    assert fitted.threshold == 7.0
    assert (fitted.allowed_events, fitted.unresolved) == (2.0, False)
    assert alarm_counts([part], [fitted.threshold]).tolist() == [2]


def test_the_budget_threshold_takes_the_safe_side_where_raising_it_splits_an_event() -> None:
    # One run 5 5 1 5 5 above 0.5 is one event; above 1 it splits into two. Budget: 1 event.
    part = np.array([0, 5, 5, 1, 5, 5, 0], dtype=float)
    fitted = budget_threshold([part], FalseAlarmBudget(1.0, 7, "7 steps"))
    # 0 would allow one event, but 1 (higher) gives two: a threshold of 0 is not safe.
    assert fitted.threshold == 5.0


def test_a_budget_the_held_out_data_cannot_resolve_is_said_so() -> None:
    part = np.arange(1.0, 101.0)
    fitted = budget_threshold([part], FalseAlarmBudget(1.0, 1440, "1440 steps"))
    # 100 steps at one per 1,440 allow 0.07 events: the threshold flags nothing held out.
    assert fitted.unresolved
    assert fitted.threshold == 100.0


def test_budget_units() -> None:
    per_hour = FalseAlarmBudget.from_rate(0.5, step_seconds=60.0)
    assert (per_hour.per_steps, per_hour.unit) == (60.0, "hour")
    per_steps = FalseAlarmBudget.from_rate(3.0, step_seconds=None)
    assert (per_steps.per_steps, per_steps.unit) == (10_000, "10000 steps")
    with pytest.raises(ValueError, match="positive"):
        FalseAlarmBudget(0.0, 10, "10 steps")


def test_poisson_interval_is_the_exact_one() -> None:
    # Garwood: [chi2(0.025; 2k) / 2, chi2(0.975; 2k + 2) / 2]; for k = 0 the lower end is 0
    # and the upper -ln(0.025) = 3.689.
    assert poisson_interval(0) == (0.0, pytest.approx(-np.log(0.025)))
    low, high = poisson_interval(4)
    assert low == pytest.approx(stats.chi2.ppf(0.025, 8) / 2)
    assert high == pytest.approx(stats.chi2.ppf(0.975, 10) / 2)
    assert (low, high) == (pytest.approx(1.0899, abs=1e-4), pytest.approx(10.2416, abs=1e-4))


def test_the_prediction_scales_held_out_events_to_each_unit() -> None:
    # 2 blocks of 360 steps, 3 events in all: 3 / 720 * 1440 = 6 per 1,440 steps.
    first, second = np.zeros(360), np.zeros(360)
    first[[10, 50]] = 2.0
    second[300:305] = 2.0
    predicted = predict([first, second], 1.0, {"1440 steps": 1440.0, "hour": 60.0})
    assert predicted["1440 steps"].rate == pytest.approx(6.0)
    assert predicted["hour"].rate == pytest.approx(3 / 720 * 60)
    low, high = poisson_interval(3)
    assert predicted["1440 steps"].low == pytest.approx(low * 2)
    assert predicted["1440 steps"].high == pytest.approx(high * 2)
    assert predicted["1440 steps"].per == "1440 steps"
