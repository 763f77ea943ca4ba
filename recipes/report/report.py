"""A report that fans out to one child job per region and merges their results.

    monthly_report.enqueue("2026-11", ["eu", "us", "apac"])

`gather` stores the children (on the `cpu` process queue) and the workflow waits without a
slot until every one has finished; it then resumes once, with their results in the order of
the calls. A child that ends dead makes `gather` raise JobFailed; here the report is then
published as partial.
"""

from __future__ import annotations

from typing import Any

import jobrun

app = jobrun.App()


@app.task(queue="cpu")
def region_totals(month: str, region: str) -> dict[str, Any]:
    """The heavy part (here: made up), in a child process."""
    if region == "atlantis":
        raise jobrun.Permanent(f"no data for {region}")
    seed = sum(map(ord, month + region))
    return {"region": region, "orders": seed % 1000, "revenue": seed * 37 % 100_000}


@app.step
def merge(month: str, parts: list[dict[str, Any]]) -> dict[str, Any]:
    return {"month": month, "regions": [p["region"] for p in parts],
            "orders": sum(p["orders"] for p in parts),
            "revenue": sum(p["revenue"] for p in parts)}


@app.workflow(max_attempts=3)
def monthly_report(month: str, regions: list[str]) -> dict[str, Any]:
    try:
        parts = jobrun.gather([region_totals.call(month, r) for r in regions])
    except jobrun.JobFailed as exc:
        return {"month": month, "partial": True, "error": str(exc)}
    return merge(month, parts)
