-- Steps after schema.sql (version 1). Block `-- vN --` takes a store from N-1 to N.

-- v2 --
-- Limits and fairness: a concurrency key per job, rate-limit buckets shared by all services.
ALTER TABLE jobs ADD COLUMN ckey TEXT;
CREATE INDEX IF NOT EXISTS jobs_ckey_ready ON jobs (queue, ckey, priority DESC, id)
    WHERE state = 'queued';
CREATE INDEX IF NOT EXISTS jobs_ckey_running ON jobs (ckey) WHERE state = 'running';
CREATE INDEX IF NOT EXISTS jobs_queue_running ON jobs (queue) WHERE state = 'running';
CREATE TABLE IF NOT EXISTS rate_buckets (
    name   TEXT PRIMARY KEY,   -- queue:NAME, task:NAME or key:KEY
    tokens REAL NOT NULL,
    at     REAL NOT NULL
);
