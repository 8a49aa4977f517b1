from __future__ import annotations

import sys
import threading

import pytest

from common.read_ahead import SWITCH_INTERVAL, batched, quick_handoffs, read_ahead


def _readers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "read-ahead"]


def test_every_item_is_handed_over_then_the_producers_error():
    def items():
        yield from range(5)
        raise ValueError("line 7: not UTF-8")

    seen = []
    with pytest.raises(ValueError, match="line 7"):
        for item in read_ahead(items()):
            seen.append(item)
    assert seen == [0, 1, 2, 3, 4]
    assert not _readers()


def test_a_consumer_that_stops_early_stops_the_reading_thread():
    produced = []

    def items():
        for item in range(1000):
            produced.append(item)
            yield item

    ahead = read_ahead(iter(items()), depth=2)
    assert next(ahead) == 0
    ahead.close()
    assert not _readers()
    assert len(produced) < 10


def test_the_switch_interval_is_short_inside_quick_handoffs_and_put_back_after():
    before = sys.getswitchinterval()
    assert before > SWITCH_INTERVAL  # Python's default, 5 ms
    with quick_handoffs:
        seen = [sys.getswitchinterval() for _ in read_ahead(iter(range(3)))]
    assert seen == [pytest.approx(SWITCH_INTERVAL)] * 3
    assert sys.getswitchinterval() == before
    assert [sys.getswitchinterval() for _ in read_ahead(iter(range(1)))] == [before]


def test_two_callers_at_once_put_the_interval_back_when_the_last_one_leaves():
    before = sys.getswitchinterval()
    entered = threading.Event()
    leave = threading.Event()

    def other() -> None:
        with quick_handoffs:
            entered.set()
            leave.wait(5)

    thread = threading.Thread(target=other)
    thread.start()
    entered.wait(5)
    with quick_handoffs:
        pass
    assert sys.getswitchinterval() == pytest.approx(SWITCH_INTERVAL)
    leave.set()
    thread.join()
    assert sys.getswitchinterval() == before


def test_an_error_inside_still_puts_the_interval_back():
    before = sys.getswitchinterval()
    with pytest.raises(OSError), quick_handoffs:
        raise OSError("disk")
    assert sys.getswitchinterval() == before


def test_batched_keeps_order_and_the_last_batch_short():
    assert list(batched(range(7), 3)) == [[0, 1, 2], [3, 4, 5], [6]]
    assert list(batched([], 3)) == []
