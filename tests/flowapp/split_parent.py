"""A workflow whose gathered child runs on another service (tests/flowapp/split_child.py):
the service that imports this module does not have the child's task, so never claims it."""

from __future__ import annotations

import jobrun
from jobrun.task import Call

app = jobrun.App()


@app.workflow(max_attempts=3)
def parent(n: int) -> list[int]:
    return list(jobrun.gather([Call("flowapp.split_child:triple", (i,)) for i in range(n)]))
