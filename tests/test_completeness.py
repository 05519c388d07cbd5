"""StreamTracker: gaps, duplicates, completeness, merging consumers' trackers."""

from __future__ import annotations

import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lclstream.completeness import StreamTracker
from lclstream.protocols import EventBatch, ParsedMessage, StreamTotals


def data(seq: int, n: int = 2, sender: int = 0, senders: int = 1, sid: str = "s") -> ParsedMessage:
    ids = np.arange(n, dtype=np.uint64)
    batch = EventBatch(ids, ids.copy(), {"detector_data": np.zeros((n, 2, 2))})
    return ParsedMessage("data", sid, sender, senders, seq, batch=batch)


def end(
    messages: int, events: int, sender: int = 0, senders: int = 1, sid: str = "s", dropped: int = 0
) -> ParsedMessage:
    totals = StreamTotals(events_sent=events, messages_sent=messages)
    if dropped:
        totals.drop("veto", dropped)
    return ParsedMessage("end", sid, sender, senders, messages, totals=totals)


def test_complete_stream() -> None:
    t = StreamTracker()
    t.add(ParsedMessage("start", "s", 0, 1, -1))
    for q in range(5):
        t.add(data(q))
    assert not t.done and not t.complete
    t.add(end(5, 10, dropped=3))
    assert t.done and t.complete
    s = t.summary()
    assert s["events_received"] == 10 and s["events_sent"] == 10
    assert s["events_dropped"] == 3 and s["drop_reasons"] == {"veto": 3}
    assert s["problems"] == [] and s["complete"]


def test_gap_is_reported_with_its_sequence_numbers() -> None:
    t = StreamTracker()
    for q in (0, 1, 3, 4):
        t.add(data(q))
    t.add(end(6, 12))
    r = t.report()
    assert r.done and not r.complete
    assert r.gaps == {0: [2, 5]}  # 5 is missing at the tail: only the end totals reveal it
    assert any("missing: 2, 5" in p for p in r.problems())
    assert any("8 events received, 12 sent" in p for p in r.problems())


def test_duplicate_is_reported() -> None:
    t = StreamTracker()
    for q in (0, 1, 1, 2):
        t.add(data(q))
    t.add(end(3, 6))
    r = t.report()
    assert r.per_sender[0].duplicates == 1
    assert r.per_sender[0].events_received == 6  # counted once
    assert not t.complete
    assert t.summary()["duplicates"] == 1


def test_missing_end_and_several_senders() -> None:
    t = StreamTracker()
    for sender in range(3):
        for q in range(2):
            t.add(data(q, sender=sender, senders=3))
    t.add(end(2, 4, sender=0, senders=3))
    t.add(end(2, 4, sender=2, senders=3))
    assert not t.done
    assert t.report().senders_ended == [0, 2]
    assert any("sender 1 has not sent its end message" in p for p in t.summary()["problems"])
    t.add(end(2, 4, sender=1, senders=3))
    assert t.complete


def test_totals_mismatch_is_incomplete() -> None:
    t = StreamTracker()
    t.add(data(0, n=3))
    t.add(end(1, 4))
    assert t.done and not t.complete


def test_merge_consumers_of_a_shared_stream() -> None:
    """Two consumers of one PUSH stream: each sees part of it and the broadcast end."""
    rng = random.Random(1)
    a, b = StreamTracker(), StreamTracker()
    for sender in range(2):
        for q in range(20):
            (a if rng.random() < 0.5 else b).add(data(q, n=3, sender=sender, senders=2))
        a.add(end(20, 60, sender=sender, senders=2))
        b.add(end(20, 60, sender=sender, senders=2))
    assert a.done and b.done
    assert not a.complete and not b.complete  # each alone misses what went to the other
    merged = StreamTracker().merge(a).merge(b)
    assert merged.complete
    assert merged.summary()["events_received"] == 120
    # A message both consumers got is a duplicate after merging.
    c = StreamTracker()
    c.add(data(0, n=3, sender=0, senders=2))
    assert not StreamTracker().merge(a).merge(b).merge(c).complete


def test_streams_are_kept_apart() -> None:
    t = StreamTracker()
    t.add(data(0, sid="x"))
    t.add(end(1, 2, sid="x"))
    t.add(data(0, sid="y"))
    assert sorted(t.stream_ids) == ["x", "y"]
    assert t.report("x").complete and not t.report("y").done
    assert not t.complete
    with pytest.raises(ValueError, match="2 streams"):
        t.report()


def test_unknown_kind_is_rejected() -> None:
    with pytest.raises(ValueError, match="kind"):
        StreamTracker().add(ParsedMessage("bogus", "s", 0, 1, 0))  # type: ignore[arg-type]


# Property: whatever subset and repetition of a stream arrives, in any order, the tracker
# names exactly the lost sequence numbers and the duplicates, split over any consumers.


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(0, 30),
    lost=st.sets(st.integers(0, 29)),
    dup=st.sets(st.integers(0, 29)),
    consumers=st.integers(1, 3),
    seed=st.integers(0, 2**16),
)
def test_property_gaps_and_duplicates(
    n: int, lost: set[int], dup: set[int], consumers: int, seed: int
) -> None:
    lost = {q for q in lost if q < n}
    dup = {q for q in dup if q < n and q not in lost}
    arrived = [q for q in range(n) if q not in lost] + sorted(dup)
    rng = random.Random(seed)
    rng.shuffle(arrived)
    trackers = [StreamTracker() for _ in range(consumers)]
    for q in arrived:
        trackers[rng.randrange(consumers)].add(data(q, n=q % 3))
    for t in trackers:
        t.add(end(n, sum(q % 3 for q in range(n))))
    merged = StreamTracker()
    for t in trackers:
        merged.merge(t)
    r = merged.report()
    assert r.per_sender[0].missing == sorted(lost)
    assert r.per_sender[0].duplicates == len(dup)
    assert merged.complete == (not lost and not dup)
