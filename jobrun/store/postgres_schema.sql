-- jobrun's PostgreSQL schema, version 1 (postgres_migrations.py moves older stores forward;
-- the version lives in schema_version). The same tables and meaning as the SQLite store's
-- (schema.sql + migrations.sql v2..v5), in PostgreSQL's own terms: identity ids that are
-- never reused, times as Unix seconds in double precision, JSON kept as text (rows.py
-- decodes it as on SQLite), the wake-ups as trigger functions.
CREATE TABLE jobs (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    task         TEXT    NOT NULL,
    queue        TEXT    NOT NULL,
    args         TEXT    NOT NULL DEFAULT '[]',
    kwargs       TEXT    NOT NULL DEFAULT '{}',
    priority     INTEGER NOT NULL DEFAULT 0,
    state        TEXT    NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL,
    run_at       DOUBLE PRECISION NOT NULL,
    key          TEXT,
    result       TEXT,
    errors       TEXT    NOT NULL DEFAULT '[]',
    enqueued_at  DOUBLE PRECISION NOT NULL,
    started_at   DOUBLE PRECISION,
    finished_at  DOUBLE PRECISION,
    holder       TEXT,
    token        BIGINT,
    lease_until  DOUBLE PRECISION,
    trace_id     TEXT,
    timeout      DOUBLE PRECISION,
    options      TEXT    NOT NULL DEFAULT '{}',
    ckey         TEXT,
    parent       BIGINT,
    fanin        INTEGER NOT NULL DEFAULT 0
);
-- Claim order within a queue: a round walks it, skipping other services' tasks and rows
-- other rounds hold (SKIP LOCKED), and stops at its limit: no sort of the backlog.
CREATE INDEX jobs_claim ON jobs (queue, priority DESC, id) WHERE state = 'queued';
-- Which (queue, task) pairs have queued jobs (the unknown-task duty).
CREATE INDEX jobs_ready ON jobs (queue, task, priority DESC, id) WHERE state = 'queued';
CREATE INDEX jobs_waiting ON jobs (run_at) WHERE state IN ('scheduled', 'retrying');
CREATE INDEX jobs_running ON jobs (queue, holder) WHERE state = 'running';
CREATE INDEX jobs_dead ON jobs (queue, finished_at) WHERE state = 'dead';
CREATE UNIQUE INDEX jobs_key ON jobs (task, key)
    WHERE key IS NOT NULL AND state IN ('scheduled', 'queued', 'running', 'retrying');
CREATE INDEX jobs_finished ON jobs (finished_at) WHERE finished_at IS NOT NULL;
CREATE INDEX jobs_ckey_ready ON jobs (queue, ckey, priority DESC, id)
    WHERE state = 'queued' AND ckey IS NOT NULL;
CREATE INDEX jobs_ckey_running ON jobs (ckey) WHERE state = 'running' AND ckey IS NOT NULL;
CREATE INDEX jobs_children ON jobs (parent) WHERE parent IS NOT NULL;
CREATE INDEX jobs_fanin_open ON jobs (parent)
    WHERE fanin = 1 AND state IN ('scheduled', 'queued', 'running', 'retrying');

CREATE TABLE queues (
    name   TEXT PRIMARY KEY,
    paused INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE cron_fires (
    entry   TEXT NOT NULL,
    fire_at DOUBLE PRECISION NOT NULL,
    job_id  BIGINT,
    PRIMARY KEY (entry, fire_at)
);

CREATE TABLE processed_operations (
    key     TEXT PRIMARY KEY,
    job_id  BIGINT,
    done_at DOUBLE PRECISION NOT NULL,
    state   TEXT NOT NULL DEFAULT 'done',
    owner   TEXT
);

CREATE TABLE rate_buckets (
    name   TEXT PRIMARY KEY,
    tokens DOUBLE PRECISION NOT NULL,
    at     DOUBLE PRECISION NOT NULL
);

CREATE TABLE catalog (
    task     TEXT NOT NULL,
    holder   TEXT NOT NULL,
    options  TEXT NOT NULL,
    seen_at  DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (task, holder)
);

CREATE TABLE meta (
    name   TEXT PRIMARY KEY,
    value  TEXT
);

CREATE TABLE steps (
    job_id   BIGINT  NOT NULL,
    seq      INTEGER NOT NULL,
    name     TEXT    NOT NULL,
    kind     TEXT    NOT NULL,
    state    TEXT    NOT NULL,
    result   TEXT,
    error    TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    started  DOUBLE PRECISION,
    finished DOUBLE PRECISION,
    waits    TEXT,
    until    DOUBLE PRECISION,
    PRIMARY KEY (job_id, seq)
);
CREATE INDEX steps_waiting ON steps (job_id) WHERE state = 'waiting';
CREATE INDEX steps_event ON steps (waits) WHERE state = 'waiting' AND waits IS NOT NULL;

CREATE TABLE events (
    id        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name      TEXT NOT NULL,
    payload   TEXT NOT NULL,
    sent_at   DOUBLE PRECISION NOT NULL,
    taken_by  BIGINT,
    taken_seq INTEGER
);
CREATE INDEX events_open ON events (name, id) WHERE taken_by IS NULL;
CREATE INDEX events_taken ON events (taken_by) WHERE taken_by IS NOT NULL;

-- A gathered child that finishes last wakes its parent, in the transaction that finishes it.
-- Writers do not take turns here as on SQLite: the parent's row is locked first (a parent
-- suspending takes it too, see `lock_suspending`), and the check after it reads with a fresh
-- snapshot, so a child finishing while its parent suspends is seen by one of the two.
CREATE FUNCTION jobrun_fanin_wake() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM jobs WHERE id = NEW.parent FOR UPDATE;
    UPDATE jobs SET run_at = least(run_at, coalesce(NEW.finished_at, run_at))
     WHERE id = NEW.parent AND state = 'scheduled'
       AND NOT EXISTS (SELECT 1 FROM jobs c WHERE c.parent = NEW.parent AND c.fanin = 1
                          AND c.state IN ('scheduled', 'queued', 'running', 'retrying'));
    RETURN NULL;
END $$;
CREATE TRIGGER jobs_fanin_wake AFTER UPDATE OF state ON jobs FOR EACH ROW
    WHEN (NEW.fanin = 1 AND NEW.state IN ('succeeded', 'dead', 'cancelled')
          AND OLD.state NOT IN ('succeeded', 'dead', 'cancelled'))
    EXECUTE FUNCTION jobrun_fanin_wake();

-- An event wakes the workflows waiting for its name. Its name's lock orders it with a
-- wait_event of that name; the waiters' rows are locked before the check, as above.
CREATE FUNCTION jobrun_events_wake() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('jobrun:' || current_schema() || ':event'),
                                  hashtext(NEW.name));
    PERFORM 1 FROM jobs
     WHERE id IN (SELECT job_id FROM steps WHERE state = 'waiting' AND waits = NEW.name)
     ORDER BY id FOR UPDATE;
    UPDATE jobs SET run_at = least(run_at, NEW.sent_at)
     WHERE state = 'scheduled'
       AND id IN (SELECT job_id FROM steps WHERE state = 'waiting' AND waits = NEW.name);
    RETURN NULL;
END $$;
CREATE TRIGGER events_wake AFTER INSERT ON events FOR EACH ROW
    EXECUTE FUNCTION jobrun_events_wake();

-- Retention: a pruned workflow takes its step records and the events it took with it.
CREATE FUNCTION jobrun_steps_gone() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM steps WHERE job_id = OLD.id;
    DELETE FROM events WHERE taken_by = OLD.id;
    RETURN NULL;
END $$;
CREATE TRIGGER jobs_steps_gone AFTER DELETE ON jobs FOR EACH ROW
    EXECUTE FUNCTION jobrun_steps_gone();
