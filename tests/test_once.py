"""jobrun.once: a side effect of an at-least-once job happens once in effect."""

from __future__ import annotations

import apsw
import pytest

import jobrun
import jobrun.testing


def test_once_survives_a_retry_after_the_side_effect(app: jobrun.App, store_path: str) -> None:
    sent: list[int] = []
    app.store.connection().execute("CREATE TABLE sent_emails (user_id INTEGER)")

    @app.task(max_attempts=3, retry_base=0.001)
    def welcome(user_id: int) -> str:
        with jobrun.once(f"welcome:{user_id}") as op:
            if op.done:
                return "already sent"
            sent.append(user_id)  # the side effect
            op.connection.execute("INSERT INTO sent_emails VALUES (?)", (user_id,))
        if jobrun.context().attempt == 1:
            raise ConnectionError("the worker fails after the side effect")
        return "sent"

    job = welcome.enqueue(42)
    jobrun.testing.run_until_idle(app)
    assert job.result() == "already sent" and job.attempts == 2
    assert sent == [42]
    conn = apsw.Connection(store_path)
    assert conn.execute("SELECT count(*) FROM sent_emails").get == 1
    assert conn.execute("SELECT key, job_id FROM processed_operations").fetchall() == [
        ("welcome:42", job.id)]


def test_an_error_in_the_block_records_nothing(app: jobrun.App, store_path: str) -> None:
    app.store.connection().execute("CREATE TABLE ledger (x INTEGER)")
    tries: list[int] = []

    @app.task(max_attempts=3, retry_base=0.001)
    def charge(order: int) -> None:
        with jobrun.once(f"charge:{order}") as op:
            if op.done:
                return
            tries.append(order)
            op.connection.execute("INSERT INTO ledger VALUES (?)", (order,))
            if len(tries) == 1:
                raise TimeoutError("payment gateway timed out")

    job = charge.enqueue(7)
    jobrun.testing.run_until_idle(app)
    assert job.refresh().state == "succeeded" and tries == [7, 7]
    conn = apsw.Connection(store_path)
    assert conn.execute("SELECT count(*) FROM ledger").get == 1  # the failed try rolled back


def test_two_jobs_one_operation(app: jobrun.App) -> None:
    effects: list[str] = []

    @app.task
    def notify(key: str) -> bool:
        with jobrun.once(key) as op:
            if op.done:
                return False
            effects.append(key)
        return True

    jobs = [notify.enqueue("invoice-9") for _ in range(3)]
    jobrun.testing.run_until_idle(app)
    assert sorted(j.result() for j in jobs) == [False, False, True]
    assert effects == ["invoice-9"]
    assert jobrun.once("invoice-9", store=app.store_path).__enter__().done
    from jobrun.once import forget

    assert forget("invoice-9", store=app.store_path)
    with jobrun.once("invoice-9", store=app.store_path) as op:
        assert not op.done


def test_once_needs_a_key() -> None:
    with pytest.raises(TypeError):
        jobrun.once("")
