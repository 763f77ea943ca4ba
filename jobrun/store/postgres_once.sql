-- jobrun.once on PostgreSQL (once_postgres.py); each is its namesake's in once.sql.

-- once_lock --
-- Blocks of one key decide one at a time (a key with no row yet has nothing to lock).
SELECT pg_advisory_xact_lock(hashtext('jobrun:' || current_schema() || ':once'),
                             hashtext(%(key)s));

-- once_owner_running --
-- Whether a pending row's attempt still runs (its job is running with that token).
SELECT 1 FROM jobs WHERE id = %(id)s AND token = %(token)s AND state = 'running';

-- once_get --
-- An operation's record, locked: a block recording it right now commits first, and is seen.
SELECT state, owner, done_at FROM processed_operations WHERE key = %(key)s FOR UPDATE;

-- once_hold --
-- Take (or take over) the operation for this attempt.
INSERT INTO processed_operations (key, job_id, done_at, state, owner)
VALUES (%(key)s, %(job_id)s, %(now)s, 'pending', %(owner)s)
    ON CONFLICT (key) DO UPDATE SET owner = excluded.owner, done_at = excluded.done_at,
                                    job_id = excluded.job_id;

-- once_let_go --
-- The block failed: the next attempt does the operation.
DELETE FROM processed_operations WHERE key = %(key)s AND owner = %(owner)s AND state = 'pending';

-- once_done --
-- Recorded in the block's own transaction; nothing if another attempt took it over.
UPDATE processed_operations SET state = 'done', done_at = %(now)s
 WHERE key = %(key)s AND owner = %(owner)s AND state = 'pending'
RETURNING key;

-- once_forget --
-- Forget a recorded operation: it may run again.
DELETE FROM processed_operations WHERE key = %(key)s;
