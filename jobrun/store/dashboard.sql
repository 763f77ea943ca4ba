-- The dashboard's reads (`jobrun top`, tui/snapshot.py). Each is answered by a partial
-- index or a short range of one; none scans the whole jobs table.

-- top_counts --
-- Per queue and state (queued also its oldest run_at); 'held' counts the running jobs claimed
-- ahead of a free worker (started_at NULL), which 'running' includes: jobs_ready, jobs_running,
-- jobs_waiting and jobs_dead, each covering (but 'held', which looks up the running rows: a
-- few, at most the services' slots and what they claim ahead).
SELECT queue, 'queued' AS state, count(*) AS n, min(run_at) AS oldest FROM jobs
 WHERE state = 'queued' GROUP BY queue
UNION ALL
SELECT queue, 'running', count(*), NULL FROM jobs WHERE state = 'running' GROUP BY queue
UNION ALL
SELECT queue, 'held', count(*), NULL FROM jobs WHERE state = 'running' AND started_at IS NULL
 GROUP BY queue
UNION ALL
SELECT queue, state, count(*), NULL FROM jobs WHERE state IN ('scheduled', 'retrying')
 GROUP BY queue, state
UNION ALL
SELECT queue, 'dead', count(*), NULL FROM jobs WHERE state = 'dead' GROUP BY queue;

-- top_held --
-- Per queue, the running jobs held (claimed ahead of a free worker, not started): `jobrun
-- stats` and the metrics tell them from the running ones. jobs_running, a row per job.
SELECT queue, count(*) AS n FROM jobs WHERE state = 'running' AND started_at IS NULL
 GROUP BY queue;

-- explain_held --
-- One queue's held jobs per holder (they take its host-wide cap): jobs_running.
SELECT holder, count(*) AS n FROM jobs
 WHERE state = 'running' AND queue = :queue AND started_at IS NULL GROUP BY holder;

-- top_queues --
-- Paused flags: a table of a few rows.
SELECT name, paused FROM queues;

-- top_finished --
-- Finished jobs per (bucket, queue, state, run time) in [since, until): a range of
-- jobs_finished. The run time (finished - started, of the last attempt) is grouped to two
-- significant digits of its milliseconds: its first two digits and its number of digits.
SELECT b, queue, state, substr(ms, 1, 2) AS lead, length(ms) AS digits, count(*) AS n FROM (
  SELECT CAST(finished_at / :width AS INTEGER) AS b, queue, state,
         CAST(round(max(0, finished_at - coalesce(started_at, finished_at)) * 1000) AS INTEGER)
           AS ms
    FROM jobs
   WHERE finished_at >= :since AND finished_at < :until AND state IN ('succeeded', 'dead'))
 GROUP BY 1, 2, 3, 4, 5;

-- top_finished_seconds --
-- Finished jobs (every final state) per second in [since, until): a count over a range of
-- jobs_finished alone (covering), so a refresh rereads rows only of the seconds it changed.
SELECT CAST(finished_at AS INTEGER) AS s, count(*) AS n FROM jobs
 WHERE finished_at >= :since AND finished_at < :until GROUP BY 1;

-- top_cron_last --
-- The last recorded fire of one cron entry: the end of its range of cron_fires' key.
SELECT max(fire_at) AS last FROM cron_fires WHERE entry = :entry;

-- top_running --
-- Running jobs, longest running first, then the held ones (claimed ahead of a free worker,
-- not started): jobs_running, at most the services' concurrency and what they claim ahead.
SELECT id, task, queue, attempts, max_attempts, started_at, holder FROM jobs
 WHERE state = 'running' ORDER BY started_at IS NULL, started_at, id LIMIT :limit;

-- top_beats --
-- Per service, when its running jobs' leases run out (each claim and renewal, its heartbeat,
-- sets it): jobs_running, a row per running job.
SELECT holder, max(lease_until) AS until FROM jobs
 WHERE state = 'running' AND holder IS NOT NULL GROUP BY holder;

-- top_dead_recent --
-- The newest dead jobs of one queue: jobs_dead in index order, `limit` rows looked up.
SELECT id, task, queue, state, attempts, max_attempts, finished_at AS at,
       json_extract(errors, '$[#-1]') AS last_error FROM jobs
 WHERE state = 'dead' AND queue = :queue ORDER BY finished_at DESC LIMIT :limit;

-- top_retrying_recent --
-- The retrying jobs whose failed attempt started last. The IN repeats jobs_waiting's WHERE
-- so SQLite may use it; only the chosen few rows have their errors parsed.
SELECT id, task, queue, state, attempts, max_attempts, started_at AS at,
       json_extract(errors, '$[#-1]') AS last_error FROM jobs
 WHERE id IN (SELECT id FROM jobs WHERE state IN ('scheduled', 'retrying')
                 AND state = 'retrying' ORDER BY started_at DESC LIMIT :limit);

-- top_waiting --
-- Workflows waiting in the store (not cancelled or dead meanwhile), by what they wait for:
-- steps_waiting, then each one's job by its key.
SELECT s.kind, count(*) AS n FROM steps AS s JOIN jobs AS j ON j.id = s.job_id
 WHERE s.state = 'waiting' AND j.state = 'scheduled' GROUP BY s.kind;

-- The console's jobs lists (tui/browse.py), one block per index. Each reads a span of at most
-- :scan index entries after the key (:k, :id), keeps the rows of :state (and :queue)
-- matching :text (task name, or argument text when :args is 1; lower-cased), at most :limit
-- of them, and adds one row (first column 1) holding the key where a full span ended: every
-- read is bounded, however rare the rows it looks for, and the next read goes on from there.

-- top_jobs_dead --
-- dead: newest finished first, from jobs_dead (covering: queue, finished_at); across queues
-- the dead entries are sorted, a cost that follows the dead jobs kept, not the table.
WITH span AS (
  SELECT id, finished_at AS k FROM jobs INDEXED BY jobs_dead
   WHERE state = 'dead' AND (:queue IS NULL OR queue = :queue)
     AND finished_at <= :k AND (finished_at < :k OR id < :id)
   ORDER BY k DESC, id DESC LIMIT :scan)
SELECT * FROM (
  SELECT 0 AS edge, j.id, j.task, j.queue, j.state, j.attempts, j.max_attempts,
         j.enqueued_at, j.started_at, j.finished_at, substr(j.args, 1, 300) AS args,
         substr(j.kwargs, 1, 300) AS kwargs, span.k
    FROM span JOIN jobs j ON j.id = span.id
   WHERE j.state = :state
     AND (:text IS NULL OR instr(lower(j.task), :text) > 0 OR (:args AND (
          instr(lower(j.args), :text) > 0 OR instr(lower(j.kwargs), :text) > 0)))
   ORDER BY span.k DESC, span.id DESC LIMIT :limit)
UNION ALL
SELECT * FROM (
  SELECT 1, id, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, k FROM span
   ORDER BY k DESC, id DESC LIMIT 1 OFFSET :scan - 1);

-- top_jobs_cancelled --
-- cancelled: newest finished first, from jobs_cancelled (queue, finished_at), as the dead
-- list: a span of jobs_finished shows none where succeeded jobs are the newest.
WITH span AS (
  SELECT id, finished_at AS k FROM jobs INDEXED BY jobs_cancelled
   WHERE state = 'cancelled' AND (:queue IS NULL OR queue = :queue)
     AND finished_at <= :k AND (finished_at < :k OR id < :id)
   ORDER BY k DESC, id DESC LIMIT :scan)
SELECT * FROM (
  SELECT 0 AS edge, j.id, j.task, j.queue, j.state, j.attempts, j.max_attempts,
         j.enqueued_at, j.started_at, j.finished_at, substr(j.args, 1, 300) AS args,
         substr(j.kwargs, 1, 300) AS kwargs, span.k
    FROM span JOIN jobs j ON j.id = span.id
   WHERE j.state = :state
     AND (:text IS NULL OR instr(lower(j.task), :text) > 0 OR (:args AND (
          instr(lower(j.args), :text) > 0 OR instr(lower(j.kwargs), :text) > 0)))
   ORDER BY span.k DESC, span.id DESC LIMIT :limit)
UNION ALL
SELECT * FROM (
  SELECT 1, id, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, k FROM span
   ORDER BY k DESC, id DESC LIMIT 1 OFFSET :scan - 1);

-- top_jobs_finished --
-- succeeded: newest finished first, a range of jobs_finished (covering).
WITH span AS (
  SELECT id, finished_at AS k FROM jobs
   WHERE finished_at IS NOT NULL AND finished_at <= :k AND (finished_at < :k OR id < :id)
   ORDER BY k DESC, id DESC LIMIT :scan)
SELECT * FROM (
  SELECT 0 AS edge, j.id, j.task, j.queue, j.state, j.attempts, j.max_attempts,
         j.enqueued_at, j.started_at, j.finished_at, substr(j.args, 1, 300) AS args,
         substr(j.kwargs, 1, 300) AS kwargs, span.k
    FROM span JOIN jobs j ON j.id = span.id
   WHERE j.state = :state AND (:queue IS NULL OR j.queue = :queue)
     AND (:text IS NULL OR instr(lower(j.task), :text) > 0 OR (:args AND (
          instr(lower(j.args), :text) > 0 OR instr(lower(j.kwargs), :text) > 0)))
   ORDER BY span.k DESC, span.id DESC LIMIT :limit)
UNION ALL
SELECT * FROM (
  SELECT 1, id, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, k FROM span
   ORDER BY k DESC, id DESC LIMIT 1 OFFSET :scan - 1);

-- top_jobs_waiting --
-- scheduled, retrying: the next to run first, a range of jobs_waiting.
WITH span AS (
  SELECT id, run_at AS k FROM jobs
   WHERE state IN ('scheduled', 'retrying') AND run_at >= :k AND (run_at > :k OR id > :id)
   ORDER BY k, id LIMIT :scan)
SELECT * FROM (
  SELECT 0 AS edge, j.id, j.task, j.queue, j.state, j.attempts, j.max_attempts,
         j.enqueued_at, j.started_at, j.finished_at, substr(j.args, 1, 300) AS args,
         substr(j.kwargs, 1, 300) AS kwargs, span.k
    FROM span JOIN jobs j ON j.id = span.id
   WHERE j.state = :state AND (:queue IS NULL OR j.queue = :queue)
     AND (:text IS NULL OR instr(lower(j.task), :text) > 0 OR (:args AND (
          instr(lower(j.args), :text) > 0 OR instr(lower(j.kwargs), :text) > 0)))
   ORDER BY span.k, span.id LIMIT :limit)
UNION ALL
SELECT * FROM (
  SELECT 1, id, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, k FROM span
   ORDER BY k, id LIMIT 1 OFFSET :scan - 1);

-- top_jobs_running --
-- running: the longest running first, then the held ones (not started: their key is past
-- every start), from jobs_running (at most the services' slots and their claims ahead).
WITH span AS (
  SELECT id, coalesce(started_at, 1e300) AS k FROM jobs
   WHERE state = 'running' AND state = :state AND (:queue IS NULL OR queue = :queue)
     AND (coalesce(started_at, 1e300), id) > (:k, :id)
   ORDER BY k, id LIMIT :scan)
SELECT * FROM (
  SELECT 0 AS edge, j.id, j.task, j.queue, j.state, j.attempts, j.max_attempts,
         j.enqueued_at, j.started_at, j.finished_at, substr(j.args, 1, 300) AS args,
         substr(j.kwargs, 1, 300) AS kwargs, span.k
    FROM span JOIN jobs j ON j.id = span.id
   WHERE j.state = :state AND (:queue IS NULL OR j.queue = :queue)
     AND (:text IS NULL OR instr(lower(j.task), :text) > 0 OR (:args AND (
          instr(lower(j.args), :text) > 0 OR instr(lower(j.kwargs), :text) > 0)))
   ORDER BY span.k, span.id LIMIT :limit)
UNION ALL
SELECT * FROM (
  SELECT 1, id, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, k FROM span
   ORDER BY k, id LIMIT 1 OFFSET :scan - 1);

-- top_jobs_queued --
-- queued: newest first, ids below :id on the primary key (a backlog is the newest ids).
WITH span AS (
  SELECT id, id AS k FROM jobs NOT INDEXED WHERE id < :id
   ORDER BY id DESC LIMIT :scan)
SELECT * FROM (
  SELECT 0 AS edge, j.id, j.task, j.queue, j.state, j.attempts, j.max_attempts,
         j.enqueued_at, j.started_at, j.finished_at, substr(j.args, 1, 300) AS args,
         substr(j.kwargs, 1, 300) AS kwargs, span.k
    FROM span JOIN jobs j ON j.id = span.id
   WHERE j.state = :state AND (:queue IS NULL OR j.queue = :queue)
     AND (:text IS NULL OR instr(lower(j.task), :text) > 0 OR (:args AND (
          instr(lower(j.args), :text) > 0 OR instr(lower(j.kwargs), :text) > 0)))
   ORDER BY span.id DESC LIMIT :limit)
UNION ALL
SELECT * FROM (
  SELECT 1, id, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, k FROM span
   ORDER BY id DESC LIMIT 1 OFFSET :scan - 1);
