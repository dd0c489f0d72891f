"""Fan-out to several sinks, each one's failure caught and reported once."""

from __future__ import annotations

import logging
from collections.abc import Iterable

import numpy as np

from stream.items import Posed
from stream.sinks.base import Sink

log = logging.getLogger(__name__)


class MultiSink(Sink):
    """Calls every sink in turn.  A sink that raises is logged once (with its traceback), taken
    out of the fan-out and listed in ``failures``; the other sinks go on.  ``close()`` closes
    every sink, each in its own try."""

    name = "sinks"

    def __init__(self, sinks: Iterable[Sink]):
        self.sinks: list[Sink] = list(sinks)
        self.failures: dict[str, BaseException] = {}
        self._failed: set[int] = set()

    def open(self) -> MultiSink:
        for sink in self.sinks:
            self._call(sink, "open", sink.open)
        return self

    def write(self, item: Posed, annotated: np.ndarray) -> None:
        for sink in self.sinks:
            if id(sink) not in self._failed:
                self._call(sink, "write", sink.write, item, annotated)

    def close(self) -> None:
        for sink in self.sinks:
            try:
                sink.close()
            except Exception as err:  # noqa: BLE001 - one sink's failure must not stop the others
                self._record(sink, "close", err)

    @property
    def active(self) -> list[Sink]:
        """The sinks that have not failed."""
        return [sink for sink in self.sinks if id(sink) not in self._failed]

    def _call(self, sink: Sink, action: str, method, *args) -> None:
        try:
            method(*args)
        except Exception as err:  # noqa: BLE001 - caught per sink by design
            self._record(sink, action, err)

    def _record(self, sink: Sink, action: str, err: Exception) -> None:
        label = getattr(sink, "name", type(sink).__name__)
        if id(sink) not in self._failed:
            log.error("sink %s failed on %s and is switched off: %s", label, action, err, exc_info=err)
            self.failures.setdefault(label, err)
        self._failed.add(id(sink))
