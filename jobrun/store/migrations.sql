-- Steps after schema.sql (version 1). Block `-- vN --` takes a store from N-1 to N.

-- v2 --
-- Limits and fairness: a concurrency key per job, rate-limit buckets shared by all services.
-- Fewer index writes per state change: every job passes queued -> running -> finished, so
-- only small partial indexes follow it (the (state, id) index touched every change is gone).
ALTER TABLE jobs ADD COLUMN ckey TEXT;
DROP INDEX IF EXISTS jobs_state;
DROP INDEX IF EXISTS jobs_running;
CREATE INDEX jobs_running ON jobs (queue, holder) WHERE state = 'running';
CREATE INDEX jobs_dead ON jobs (queue, finished_at) WHERE state = 'dead';
CREATE INDEX jobs_ckey_ready ON jobs (queue, ckey, priority DESC, id)
    WHERE state = 'queued' AND ckey IS NOT NULL;
CREATE INDEX jobs_ckey_running ON jobs (ckey) WHERE state = 'running' AND ckey IS NOT NULL;
CREATE TABLE rate_buckets (
    name   TEXT PRIMARY KEY,   -- queue:NAME, task:NAME or key:KEY
    tokens REAL NOT NULL,
    at     REAL NOT NULL
);

-- v3 --
-- jobrun.once: an attempt performing an operation holds a pending row (its owner is the
-- attempt: job id and fencing token), so a concurrent attempt waits instead of repeating it.
ALTER TABLE processed_operations ADD COLUMN state TEXT NOT NULL DEFAULT 'done';
ALTER TABLE processed_operations ADD COLUMN owner TEXT;

-- v4 --
-- One meaning per job. A key is unique per task among unfinished jobs (another task may use
-- the same key). A service claims only the tasks it runs: queued jobs are indexed by task
-- within their queue. Services publish the tasks they run, with their effective options, in
-- the catalog that by-name producers resolve against; `meta` holds small store-wide facts.
DROP INDEX IF EXISTS jobs_key;
CREATE UNIQUE INDEX jobs_key ON jobs (task, key)
    WHERE key IS NOT NULL AND state IN ('scheduled', 'queued', 'running', 'retrying');
DROP INDEX IF EXISTS jobs_ready;
CREATE INDEX jobs_ready ON jobs (queue, task, priority DESC, id) WHERE state = 'queued';
CREATE TABLE catalog (
    task     TEXT NOT NULL,
    holder   TEXT NOT NULL,   -- the service that runs it
    options  TEXT NOT NULL,   -- JSON: the effective defaults a job of it gets
    seen_at  REAL NOT NULL,   -- when that service declared it (or stopped)
    PRIMARY KEY (task, holder)
) WITHOUT ROWID;
CREATE TABLE meta (
    name   TEXT PRIMARY KEY,
    value  TEXT
) WITHOUT ROWID;

-- v5 --
-- Durable workflows. A workflow is a job whose body is replayed; each step it calls is a row
-- of `steps` keyed by (job, call number). Jobs started by a body name it as `parent`; a
-- gathered child (`fanin` 1) wakes its parent, in the transaction that finishes it, when it
-- was the last of the parent's gathered children to finish: a check per child, never a shared
-- counter. Events wait in `events` until a workflow takes one.
ALTER TABLE jobs ADD COLUMN parent INTEGER;
ALTER TABLE jobs ADD COLUMN fanin INTEGER NOT NULL DEFAULT 0;
CREATE INDEX jobs_children ON jobs (parent) WHERE parent IS NOT NULL;
CREATE INDEX jobs_fanin_open ON jobs (parent)
    WHERE fanin = 1 AND state IN ('scheduled', 'queued', 'running', 'retrying');
CREATE TABLE steps (
    job_id   INTEGER NOT NULL,
    seq      INTEGER NOT NULL,   -- call order in the body, from 1
    name     TEXT    NOT NULL,   -- the step function's name (jobrun.sleep, ... for waits)
    kind     TEXT    NOT NULL,   -- step | sleep | event | gather | enqueue
    state    TEXT    NOT NULL,   -- succeeded | failed | waiting | retrying
    result   TEXT,               -- JSON (a gather waiting: its child ids)
    error    TEXT,               -- JSON {type, message, ...} of the last failure
    attempts INTEGER NOT NULL DEFAULT 0,
    started  REAL,
    finished REAL,
    waits    TEXT,               -- the event name a wait_event waits for
    until    REAL,               -- a sleep's end, a wait's timeout, a retry's time
    PRIMARY KEY (job_id, seq)
) WITHOUT ROWID;
CREATE INDEX steps_waiting ON steps (job_id) WHERE state = 'waiting';
CREATE INDEX steps_event ON steps (waits) WHERE state = 'waiting' AND waits IS NOT NULL;
CREATE TABLE events (
    id        INTEGER PRIMARY KEY,
    name      TEXT NOT NULL,
    payload   TEXT NOT NULL,     -- JSON
    sent_at   REAL NOT NULL,
    taken_by  INTEGER,           -- the workflow job that took it
    taken_seq INTEGER            -- at that step
);
CREATE INDEX events_open ON events (name, id) WHERE taken_by IS NULL;
CREATE INDEX events_taken ON events (taken_by) WHERE taken_by IS NOT NULL;
CREATE TRIGGER jobs_fanin_wake AFTER UPDATE OF state ON jobs
    WHEN NEW.fanin = 1 AND NEW.state IN ('succeeded', 'dead', 'cancelled')
     AND OLD.state NOT IN ('succeeded', 'dead', 'cancelled')
BEGIN
    UPDATE jobs SET run_at = min(run_at, coalesce(NEW.finished_at, run_at))
     WHERE id = NEW.parent AND state = 'scheduled'
       AND NOT EXISTS (SELECT 1 FROM jobs c WHERE c.parent = NEW.parent AND c.fanin = 1
                          AND c.state IN ('scheduled', 'queued', 'running', 'retrying'));
END;
CREATE TRIGGER events_wake AFTER INSERT ON events
BEGIN
    UPDATE jobs SET run_at = min(run_at, NEW.sent_at)
     WHERE state = 'scheduled'
       AND id IN (SELECT job_id FROM steps WHERE state = 'waiting' AND waits = NEW.name);
END;
-- Retention: a pruned workflow takes its step records and the events it took with it.
CREATE TRIGGER jobs_steps_gone AFTER DELETE ON jobs
BEGIN
    DELETE FROM steps WHERE job_id = OLD.id;
    DELETE FROM events WHERE taken_by = OLD.id;
END;

-- v6 --
-- The dashboard's queued counts and oldest ready time per queue from the claim index itself,
-- run_at carried at its end so it covers them (a second index would be one more page per
-- state change: flash); a queue's concurrency set live by an operator (`jobrun top`), NULL:
-- the config's.
DROP INDEX IF EXISTS jobs_ready;
CREATE INDEX jobs_ready ON jobs (queue, task, priority DESC, id, run_at) WHERE state = 'queued';
ALTER TABLE queues ADD COLUMN concurrency INTEGER;

-- v7 --
-- The console's list of cancelled jobs, newest finished first, from an index of its own:
-- cancelled jobs are rare among the finished, and a span of jobs_finished (the newest
-- succeeded) showed none. One more page only when a job is cancelled.
CREATE INDEX jobs_cancelled ON jobs (queue, finished_at) WHERE state = 'cancelled';
-- Cancelled attempts still running ("letting go"): their holder renews, ends or is rescued.
CREATE INDEX jobs_letting_go ON jobs (holder) WHERE state = 'cancelled' AND holder IS NOT NULL;
