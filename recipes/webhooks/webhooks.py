"""Webhook delivery: POST a JSON event, retry with backoff on network errors and 5xx,
give up at once on 4xx.

- A network error (refused, reset, DNS, timeout) or a 5xx answer raises an ordinary
  exception: the job retries with exponential backoff and full jitter (the queue's
  `retry_base` / `retry_cap`) until `max_attempts`, then it is `dead`.
- 429 Too Many Requests or 503 with a `Retry-After: SECONDS` header: `jobrun.Retry(delay=...)`,
  the receiver's own pace (capped at an hour).
- Any other 4xx: the request itself is wrong (unknown endpoint, bad auth, rejected payload);
  sending it again will not help, so `jobrun.Permanent` sends the job to `dead` at once
  (`jobrun ls --state dead`, `jobrun retry ID` once the receiver is fixed).

Every attempt carries the same `Webhook-Id` (the job id): delivery is at-least-once, and
receivers de-duplicate on it. With `$WEBHOOK_SECRET` set, the body is signed
(`Webhook-Signature: sha256=<hex HMAC of the body>`).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import urllib.error
import urllib.request
from typing import Any

import jobrun

app = jobrun.App()

TIMEOUT = 10.0         # seconds for the whole request; a slow receiver is a network error
MAX_RETRY_AFTER = 3600.0


class DeliveryFailed(Exception):
    """A 5xx (or a network error): retried with backoff."""


def _retry_after(headers: Any) -> float | None:
    value = headers.get("Retry-After") if headers is not None else None
    try:
        return min(MAX_RETRY_AFTER, max(0.0, float(value))) if value is not None else None
    except ValueError:
        return None  # an HTTP date: let the backoff decide


def _request(url: str, body: bytes, job_id: int) -> urllib.request.Request:
    headers = {"Content-Type": "application/json", "User-Agent": "jobrun-webhooks/1",
               "Webhook-Id": str(job_id)}
    secret = os.environ.get("WEBHOOK_SECRET")
    if secret:
        digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        headers["Webhook-Signature"] = f"sha256={digest}"
    return urllib.request.Request(url, data=body, headers=headers, method="POST")


@app.task(queue="webhooks")
def deliver(url: str, event: dict[str, Any]) -> dict[str, Any]:
    """POST `event` to `url`; returns the status and the attempt that got it through."""
    ctx = jobrun.context()
    body = json.dumps(event, separators=(",", ":")).encode()
    try:
        with urllib.request.urlopen(_request(url, body, ctx.job_id), timeout=TIMEOUT) as resp:
            return {"status": resp.status, "attempt": ctx.attempt}
    except urllib.error.HTTPError as exc:
        code = exc.code
        exc.close()
        wait = _retry_after(exc.headers)
        if code in (429, 503) and wait is not None:
            raise jobrun.Retry(delay=wait) from None
        if 500 <= code < 600 or code == 429:
            raise DeliveryFailed(f"{url} answered {code}") from None
        raise jobrun.Permanent(f"{url} answered {code}: not retried") from None
    # urllib.error.URLError, TimeoutError, ConnectionError: not caught, so the job retries.
