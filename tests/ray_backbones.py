"""Backbone factories that Ray workers import by name (tests/ is on their PYTHONPATH)."""

import os
from pathlib import Path

from conftest import ToyBackbone


def toy():
    return ToyBackbone()


class CrashOnce(ToyBackbone):
    """Kills its worker process on the 2nd ``embed`` call, once per marker file (a worker dying mid-run)."""

    def __init__(self, marker: str):
        super().__init__()
        self.marker = Path(marker)

    def embed(self, batch):
        if self.calls >= 1 and not self.marker.exists():
            self.marker.write_text(str(os.getpid()))
            os._exit(1)
        return super().embed(batch)


def crash_once(marker: str):
    return CrashOnce(marker)
