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
