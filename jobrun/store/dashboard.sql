-- The dashboard's reads (`jobrun top`, tui/snapshot.py). Each is answered by a partial
-- index or a short range of one; none scans the whole jobs table.

-- top_counts --
-- Per queue and state (queued also its oldest run_at): jobs_ready, jobs_running,
-- jobs_waiting and jobs_dead, the last two covering.
SELECT queue, 'queued', count(*), min(run_at) FROM jobs WHERE state = 'queued' GROUP BY queue
UNION ALL
SELECT queue, 'running', count(*), NULL FROM jobs WHERE state = 'running' GROUP BY queue
UNION ALL
SELECT queue, state, count(*), NULL FROM jobs WHERE state IN ('scheduled', 'retrying')
 GROUP BY queue, state
UNION ALL
SELECT queue, 'dead', count(*), NULL FROM jobs WHERE state = 'dead' GROUP BY queue;

-- top_queues --
-- Paused flags: a table of a few rows.
SELECT name, paused FROM queues;

-- top_finished --
-- Finished jobs per (bucket, queue, state) in [since, until): a range of jobs_finished.
SELECT CAST(finished_at / :width AS INTEGER), queue, state, count(*) FROM jobs
 WHERE finished_at >= :since AND finished_at < :until AND state IN ('succeeded', 'dead')
 GROUP BY 1, 2, 3;

-- top_running --
-- Running jobs, longest running first: jobs_running, at most the services' concurrency.
SELECT id, task, queue, attempts, max_attempts, started_at, holder FROM jobs
 WHERE state = 'running' ORDER BY started_at, id LIMIT :limit;

-- top_dead_recent --
-- The newest dead jobs of one queue: jobs_dead in index order, `limit` rows looked up.
SELECT id, task, queue, state, attempts, max_attempts, finished_at,
       json_extract(errors, '$[#-1]') FROM jobs
 WHERE state = 'dead' AND queue = :queue ORDER BY finished_at DESC LIMIT :limit;

-- top_retrying_recent --
-- The retrying jobs whose failed attempt started last. The IN repeats jobs_waiting's WHERE
-- so SQLite may use it; only the chosen few rows have their errors parsed.
SELECT id, task, queue, state, attempts, max_attempts, started_at,
       json_extract(errors, '$[#-1]') FROM jobs
 WHERE id IN (SELECT id FROM jobs WHERE state IN ('scheduled', 'retrying')
                 AND state = 'retrying' ORDER BY started_at DESC LIMIT :limit);

-- top_waiting --
-- Workflows waiting in the store, by what they wait for: steps_waiting, a few rows each.
SELECT kind, count(*) FROM steps WHERE state = 'waiting' GROUP BY kind;

-- top_jobs --
-- One page of the console's jobs list: one state (and queue), newest first, keyset-paged
-- below :before. The span is at most :scan rows of jobs_state in index order, so a text
-- filter that matches nothing still reads a bounded range; the filter (task name, argument
-- text; :text lower-cased) is checked on those rows only.
WITH span AS (
  SELECT id FROM jobs WHERE state = :state AND id < :before
     AND (:queue IS NULL OR queue = :queue)
   ORDER BY id DESC LIMIT :scan)
SELECT j.id, j.task, j.queue, j.state, j.attempts, j.max_attempts, j.enqueued_at,
       j.finished_at, substr(j.args, 1, 300), substr(j.kwargs, 1, 300)
  FROM span JOIN jobs j ON j.id = span.id
 WHERE :text IS NULL OR instr(lower(j.task), :text) > 0 OR instr(lower(j.args), :text) > 0
       OR instr(lower(j.kwargs), :text) > 0
 ORDER BY j.id DESC LIMIT :limit;

-- top_jobs_span --
-- Where a span of top_jobs ended (its lowest id) and how many rows it held: a page that
-- found fewer matches than asked says how far it searched.
SELECT min(id), count(*) FROM (
  SELECT id FROM jobs WHERE state = :state AND id < :before
     AND (:queue IS NULL OR queue = :queue)
   ORDER BY id DESC LIMIT :scan);
