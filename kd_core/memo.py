"""In-process memoisation that holds under concurrency: many sessions asking at once compute a value once."""

from __future__ import annotations

import functools
import threading
from typing import Any, Callable, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


def computed_once(maxsize: int) -> Callable[[F], F]:
    """functools.lru_cache whose concurrent first calls wait for one computation instead of each doing it.

    A plain lru_cache lets ten sessions that open the app at once each load the dataset (ten times the
    memory and time); here callers take a lock, so the first computes and the rest get its value.
    """
    def decorate(fn: F) -> F:
        cached = functools.lru_cache(maxsize=maxsize)(fn)
        lock = threading.RLock()  # re-entrant: a memoised function may call another that shares nothing with it

        @functools.wraps(fn)
        def call(*args: Any, **kwargs: Any) -> Any:
            with lock:
                return cached(*args, **kwargs)

        call.cache_clear = cached.cache_clear  # type: ignore[attr-defined]
        return call  # type: ignore[return-value]

    return decorate
