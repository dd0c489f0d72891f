"""The sink interface: where annotated frames and their poses go at the end of the pipeline."""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from stream.items import Posed


class Sink(ABC):
    """One output.  ``open()`` prepares it, ``write(item, annotated)`` takes one finished frame
    (the decoded ``Posed`` item and the annotated BGR image), ``close()`` flushes and releases it
    and may be called any number of times.  A sink is a context manager.

    ``name`` labels the sink in logs.  Sinks that write files create their parent folder and
    open the file at the first frame, so a run that fails before any frame leaves no file behind.
    """

    name: str = "sink"

    def open(self) -> Sink:
        """Prepare the sink (idempotent); the default does nothing."""
        return self

    @abstractmethod
    def write(self, item: Posed, annotated: np.ndarray) -> None:
        """Take one finished frame."""

    @abstractmethod
    def close(self) -> None:
        """Flush and release; safe to call twice."""

    def __enter__(self) -> Sink:
        return self.open()

    def __exit__(self, *exc) -> None:
        self.close()
