"""Exponential backoff with full jitter (delay drawn from [0, min(cap, base * 2**attempt)]).

Full jitter spreads reconnects of many bots after one terminal restart instead of having them
retry in lockstep.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass


@dataclass(frozen=True, kw_only=True)
class Backoff:
    base: float = 0.5
    cap: float = 60.0
    factor: float = 2.0

    def delays(self, rand: Callable[[], float] = random.random) -> Iterator[float]:
        attempt = 0
        while True:
            ceiling = min(self.cap, self.base * self.factor**attempt)
            yield ceiling * rand()
            attempt += 1
