-- Steps after postgres_schema.sql (version 1) on PostgreSQL. Block `-- vN --` takes a store
-- from N-1 to N.

-- v2 --
-- A queue's concurrency set live by an operator (`jobrun top`), NULL: the config's.
ALTER TABLE queues ADD COLUMN concurrency INTEGER;

-- v3 --
-- The console's list of cancelled jobs, newest finished first, from an index of its own:
-- cancelled jobs are rare among the finished, and a span of jobs_finished (the newest
-- succeeded) showed none. One more page only when a job is cancelled.
CREATE INDEX jobs_cancelled ON jobs (queue, finished_at) WHERE state = 'cancelled';
-- Cancelled attempts still running ("letting go"): their holder renews, ends or is rescued.
CREATE INDEX jobs_letting_go ON jobs (holder) WHERE state = 'cancelled' AND holder IS NOT NULL;
