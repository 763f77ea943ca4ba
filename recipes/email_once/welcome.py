"""Send a welcome email exactly once in effect, although jobs run at least once.

A job can run again after its side effect happened: the worker dies after the send, or a
later step of the same job fails and the job retries. `jobrun.once(key)` records the
operation in the store, in the same transaction as the bookkeeping the block writes through
`op.connection` (here: the `sent_emails` row). A retry finds the key and skips the send.

The mailer is a stand-in: it appends one JSON line per message to an outbox file, like an
SMTP server or an email API would accept one message. Swap `Mailer.send` for your provider's
call and pass `op.key` as its idempotency key if it takes one: that also covers the one gap
nothing local can close, a crash between the send and the commit of the record.
"""

from __future__ import annotations

import json
import os
import secrets
import time

import apsw

import jobrun

app = jobrun.App()  # the store: $JOBRUN_STORE, else `store` in $JOBRUN_CONFIG

SCHEMA = """
CREATE TABLE IF NOT EXISTS sent_emails (
    user_id    INTEGER PRIMARY KEY,
    address    TEXT NOT NULL,
    message_id TEXT NOT NULL,
    job_id     INTEGER,
    sent_at    REAL NOT NULL
)"""


class Mailer:
    """A fake mail provider: every accepted message is one line in an outbox file."""

    def __init__(self, outbox: str | None = None) -> None:
        self._outbox = outbox

    @property
    def outbox(self) -> str:
        # $WELCOME_OUTBOX, else outbox.jsonl beside the store.
        return self._outbox or os.environ.get("WELCOME_OUTBOX") or os.path.join(
            os.path.dirname(app.store_path), "outbox.jsonl")

    def send(self, to: str, subject: str, body: str, *, idempotency_key: str) -> str:
        message_id = f"<{secrets.token_hex(8)}@mailer.example>"
        line = json.dumps({"message_id": message_id, "to": to, "subject": subject,
                           "body": body, "idempotency_key": idempotency_key})
        with open(self.outbox, "a", encoding="utf-8") as f:
            f.write(line + "\n")
        return message_id


mailer = Mailer()


def recorded_message_id(user_id: int) -> str:
    db = apsw.Connection(app.store_path)
    try:
        row = db.execute("SELECT message_id FROM sent_emails WHERE user_id = ?",
                         (user_id,)).fetchone()
    finally:
        db.close()
    assert row is not None, f"no email recorded for user {user_id}"
    return str(row[0])


def tell_crm(user_id: int, message_id: str) -> None:
    """Work after the send that may fail (a CRM API, say). Here: nothing."""


@app.task(queue="mail")
def send_welcome(user_id: int, address: str) -> str:
    """Email `address` once per user; returns the message id (of the one real send)."""
    with jobrun.once(f"welcome-email:{user_id}") as op:
        if not op.done:
            message_id = mailer.send(address, "Welcome!", f"Hello user {user_id}, welcome.",
                                     idempotency_key=op.key)
            # The bookkeeping and the once-record commit together, at the end of the block.
            db = op.connection
            db.execute(SCHEMA)
            db.execute("INSERT INTO sent_emails VALUES (?, ?, ?, ?, ?)",
                       (user_id, address, message_id, jobrun.context().job_id, time.time()))
    message_id = recorded_message_id(user_id)  # this attempt's send, or an earlier one's
    # If this fails, the job retries; the retry finds the once-record and does not send again.
    tell_crm(user_id, message_id)
    return message_id
