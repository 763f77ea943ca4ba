"""Wrong uses: each line marked `# E: CODE` must be reported by mypy with that code."""

from __future__ import annotations

from typed.sample import add, build_report, fetch, nothing


def misuse() -> None:
    add.enqueue("x")  # E: arg-type
    add.enqueue(1)  # E: call-arg
    add.enqueue(1, 2, 3)  # E: call-arg
    add.enqueue(1, c=2)  # E: call-arg
    add.call("x", 2)  # E: arg-type
    add.options(delay=3).enqueue(1, "2")  # E: arg-type
    build_report.enqueue(7, "html")  # E: call-arg
    nothing.enqueue(1)  # E: call-arg
    add.enqueue(1, 2).result() + "s"  # E: operator
    text: str = add.enqueue(1, 2).result()  # E: assignment
    build_report.enqueue(1).result() + 1  # E: operator
    fetch.enqueue(1).result() + "s"  # E: operator
    fetch.enqueue("x")  # E: arg-type
