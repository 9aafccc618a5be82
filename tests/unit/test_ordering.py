"""The copy rule: the owner's version decides, business time only between unversioned events."""

from datetime import UTC, datetime, timedelta

from shared.contracts.ordering import latest_per_key, supersedes

T = datetime(2026, 1, 1, tzinfo=UTC)
EARLIER = T - timedelta(days=30)


def test_a_greater_version_wins_even_dated_in_the_past():
    assert supersedes(5, EARLIER, 4, T)
    assert not supersedes(4, T, 5, EARLIER)
    assert not supersedes(5, T, 5, T), "a duplicate changes nothing"


def test_unversioned_events_apply_by_time_only_to_an_unversioned_copy():
    assert supersedes(None, T, None, EARLIER) and not supersedes(None, EARLIER, None, T)
    assert not supersedes(None, T + timedelta(days=1), 1, T), "a versioned copy is newer than any old event"
    assert supersedes(1, EARLIER, None, T), "the first versioned event replaces an old copy"


def test_latest_per_key_folds_a_batch_in_any_order():
    events = [("a", 3, T), ("a", 5, EARLIER), ("b", None, T), ("a", 4, T), ("b", None, EARLIER), ("a", 5, EARLIER)]
    for order in (events, events[::-1]):
        latest = latest_per_key(order, lambda e: e[0], lambda e: e[1], lambda e: e[2])
        assert latest == {"a": ("a", 5, EARLIER), "b": ("b", None, T)}
