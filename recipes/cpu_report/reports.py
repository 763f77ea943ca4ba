"""A CPU-heavy report on a `process` queue.

Pure-Python number crunching holds the GIL: on a thread queue it would slow down every
other job of the service (and the service's own loops). `[queues.reports]` in jobrun.toml
says `executor = "process"`: each job runs in a child process from a pool (started from a
forkserver that has imported this module), with JSON in and out, so reports use other
cores and a runaway report can be timed out or cancelled by killing its process group.

`primes_report(limit)` counts the primes below `limit` with a sieve and says which process
computed it.
"""

from __future__ import annotations

import math
import os
import time
from typing import Any

import jobrun

app = jobrun.App()


@app.task(queue="reports", timeout=600, max_attempts=2)
def primes_report(limit: int) -> dict[str, Any]:
    if not isinstance(limit, int) or limit < 2:
        raise jobrun.Permanent(f"limit must be an int >= 2, not {limit!r}")
    started = time.process_time()
    sieve = bytearray([1]) * limit
    sieve[0] = sieve[1] = 0
    for n in range(2, math.isqrt(max(limit - 1, 0)) + 1):
        if sieve[n]:
            sieve[n * n::n] = bytes(len(range(n * n, limit, n)))
    count = sum(sieve)
    largest = sieve.rfind(1)
    # Pure-Python work as well, the kind that holds the GIL: the sum of the primes' digits.
    digits = sum(int(d) for p in range(limit) if sieve[p] for d in str(p))
    return {"limit": limit, "primes": count, "largest": largest, "digit_sum": digits,
            "pid": os.getpid(), "cpu_seconds": round(time.process_time() - started, 3)}
