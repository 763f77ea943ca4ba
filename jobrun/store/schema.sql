-- jobrun store schema. Version is PRAGMA user_version; migrations.py moves older files forward.
CREATE TABLE IF NOT EXISTS jobs (
    id           INTEGER PRIMARY KEY,
    task         TEXT    NOT NULL,
    queue        TEXT    NOT NULL,
    args         TEXT    NOT NULL DEFAULT '[]',   -- JSON list
    kwargs       TEXT    NOT NULL DEFAULT '{}',   -- JSON object
    priority     INTEGER NOT NULL DEFAULT 0,      -- higher runs first within a queue
    state        TEXT    NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,      -- attempts started (and counted)
    max_attempts INTEGER NOT NULL,
    run_at       REAL    NOT NULL,                -- Unix seconds, UTC
    key          TEXT,                            -- de-duplication among unfinished jobs
    result       TEXT,                            -- JSON
    errors       TEXT    NOT NULL DEFAULT '[]',   -- JSON list: {at, type, message, traceback, attempt}
    enqueued_at  REAL    NOT NULL,
    started_at   REAL,
    finished_at  REAL,
    holder       TEXT,                            -- service process holding the attempt
    token        INTEGER,                         -- fencing token of the current attempt
    lease_until  REAL,                            -- a live but stuck holder loses the job after this
    trace_id     TEXT,
    timeout      REAL,
    options      TEXT    NOT NULL DEFAULT '{}'    -- JSON: retry_base, retry_cap, ...
);
-- Claim order: queue, higher priority first, then oldest.
CREATE INDEX IF NOT EXISTS jobs_ready ON jobs (queue, priority DESC, id) WHERE state = 'queued';
-- Promotion of due scheduled/retrying jobs.
CREATE INDEX IF NOT EXISTS jobs_waiting ON jobs (run_at) WHERE state IN ('scheduled', 'retrying');
-- Rescue: running jobs by holder.
CREATE INDEX IF NOT EXISTS jobs_running ON jobs (holder) WHERE state = 'running';
-- A key is unique among unfinished jobs.
CREATE UNIQUE INDEX IF NOT EXISTS jobs_key ON jobs (key)
    WHERE key IS NOT NULL AND state IN ('scheduled', 'queued', 'running', 'retrying');
-- Listing newest first by state and pruning.
CREATE INDEX IF NOT EXISTS jobs_state ON jobs (state, id);
CREATE INDEX IF NOT EXISTS jobs_finished ON jobs (finished_at) WHERE finished_at IS NOT NULL;

CREATE TABLE IF NOT EXISTS queues (
    name   TEXT PRIMARY KEY,
    paused INTEGER NOT NULL DEFAULT 0
);

-- One row per cron fire: a second fire of the same due time is impossible.
CREATE TABLE IF NOT EXISTS cron_fires (
    entry   TEXT NOT NULL,
    fire_at REAL NOT NULL,
    job_id  INTEGER,
    PRIMARY KEY (entry, fire_at)
);

-- Operations already done, for idempotent side effects (jobrun.once).
CREATE TABLE IF NOT EXISTS processed_operations (
    key     TEXT PRIMARY KEY,
    job_id  INTEGER,
    done_at REAL NOT NULL
);
