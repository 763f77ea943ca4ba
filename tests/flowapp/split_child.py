"""The child task of tests/flowapp/split_parent.py, run by a service of its own."""

from __future__ import annotations

import jobrun

app = jobrun.App()


@app.task(queue="kids")
def triple(i: int) -> int:
    return i * 3
