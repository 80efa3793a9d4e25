"""Fault injection for the Ray tests, importable by Ray workers (they share this PYTHONPATH)."""
from __future__ import annotations

import os


class ExitOnceOnMarker:
    """A model-actor hook: the first actor call that finds the marker file removes it and kills
    its own process (os._exit: no cleanup, as a crashed or preempted worker), mid-run."""

    def __init__(self, marker, after_calls: int = 1):
        self.marker, self.after_calls, self.calls = str(marker), after_calls, 0

    def __call__(self, paths, records):
        self.calls += 1
        if self.calls > self.after_calls and os.path.exists(self.marker):
            try:
                os.remove(self.marker)
            except FileNotFoundError:   # another actor won the race
                return
            os._exit(1)
