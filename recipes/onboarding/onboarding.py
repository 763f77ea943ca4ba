"""Onboarding as a durable workflow: a welcome mail, three days of quiet, then a wait of up
to a week for the user to verify their address, then a score or a reminder.

    onboard.options(key=f"user-{user_id}").enqueue(user_id)   # once per user
    app.send_event(f"verified:{user_id}", {"via": "link"})    # from the web app, in its
                                                              # own transaction if it likes
    jobrun send-event verified:42 '{"via": "support"}'        # or by hand

The sleep and the wait hold no thread: a waiting onboarding is one row in the store, and it
resumes on time across restarts. `WELCOME_DELAY` and `VERIFY_WITHIN` are module constants so
a test can shorten them.
"""

from __future__ import annotations

import os
from typing import Any

import jobrun

app = jobrun.App()
WELCOME_DELAY = 3 * 86400.0
VERIFY_WITHIN = 7 * 86400.0


def outbox(line: str) -> None:
    """Stand-in for a mail service: one line per mail in outbox.txt beside the store."""
    with open(os.path.join(os.path.dirname(app.store_path), "outbox.txt"), "a",
              encoding="utf-8") as f:
        f.write(line + "\n")


@app.step(max_attempts=5)
def send_mail(user_id: int, kind: str) -> str:
    outbox(f"{kind} {user_id}")
    return kind


@app.step
def score(user_id: int, via: str) -> int:
    return 100 if via == "link" else 50


@app.workflow(max_attempts=5)
def onboard(user_id: int) -> dict[str, Any]:
    send_mail(user_id, "welcome")
    jobrun.sleep(WELCOME_DELAY)
    verified = jobrun.wait_event(f"verified:{user_id}", timeout=VERIFY_WITHIN)
    if verified is None:
        send_mail(user_id, "reminder")
        return {"user": user_id, "verified": False}
    return {"user": user_id, "verified": True, "score": score(user_id, verified["via"])}
