"""Reading ahead: a file's items produced by a thread of their own while the caller stores them.

Both importers (the billing file, the bank statement) read and check their file in Python while
PostgreSQL stores and checks what came before (`read_ahead`).

Python's work holds the interpreter lock; a caller that only waits on its database connection
must take the lock back each time an answer arrives, and by default the reading thread keeps it
for up to 5 ms (`sys.getswitchinterval()`) before giving it up. A COPY of a chunk of the billing
file is a few dozen such waits: that import spent a second of its ten waiting so (measured), and
runs its reading under `quick_handoffs`, a short switch interval. The statement import does not:
its appliers do Python work of their own, and with the short interval its Python took more CPU
(12.2 s for 100,000 lines, against 9.2 and 10.5 s without it, single runs) for no time saved
that stood out of the machine's noise.
"""

from __future__ import annotations

import queue
import sys
import threading
from collections.abc import Generator, Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")

# 50 µs: measured on the billing import, 200 µs and more saved nothing, 20 µs no more than 50.
SWITCH_INTERVAL = 50e-6


class _QuickHandoffs:
    """The interpreter's switch interval, kept short while at least one caller is inside and put
    back as it was when the last one leaves."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.readers = 0
        self.previous = sys.getswitchinterval()

    def __enter__(self) -> None:
        with self.lock:
            if self.readers == 0:
                self.previous = sys.getswitchinterval()
                sys.setswitchinterval(min(self.previous, SWITCH_INTERVAL))
            self.readers += 1

    def __exit__(self, *exc: object) -> None:
        with self.lock:
            self.readers -= 1
            if self.readers == 0:
                sys.setswitchinterval(self.previous)


quick_handoffs = _QuickHandoffs()


def read_ahead(items: Iterator[T], depth: int = 2) -> Generator[T, None, None]:
    """The items, produced by a thread of their own up to `depth` ahead of the consumer: Python
    reads the file while the database works on what came before (the two then use both cores).

    An error raised while producing an item is raised here, where the item would have come; a
    consumer that stops early (or closes this generator) stops the thread. The producer must not
    use the database: Django gives each thread a connection of its own, outside the caller's
    transaction.
    """
    handoff: queue.Queue[tuple[object, BaseException | None]] = queue.Queue(maxsize=depth)
    stop = threading.Event()
    end = object()

    def hand_over(item: object, error: BaseException | None = None) -> bool:
        while not stop.is_set():
            try:
                handoff.put((item, error), timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not hand_over(item):
                    return
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, raised there
            hand_over(end, exc)
        else:
            hand_over(end)

    producer = threading.Thread(target=produce, name="read-ahead", daemon=True)
    producer.start()
    try:
        while True:
            item, error = handoff.get()
            if item is end:
                if error is not None:
                    raise error
                return
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        producer.join()


def batched(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """The items in lists of `size` (the last one shorter)."""
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
