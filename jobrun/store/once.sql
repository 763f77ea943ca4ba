-- jobrun.once: operations done once in effect (once.py). A pending row is held by the
-- attempt performing the operation (owner "job_id:token"); done rows are the record.

-- once_owner_running --
-- Whether a pending row's attempt still runs (its job is running with that token).
SELECT 1 FROM jobs WHERE id = :id AND token = :token AND state = 'running';

-- once_get --
-- An operation's record: done, or pending and whose.
SELECT state, owner, done_at FROM processed_operations WHERE key = :key;

-- once_hold --
-- Take (or take over) the operation for this attempt.
INSERT INTO processed_operations (key, job_id, done_at, state, owner)
VALUES (:key, :job_id, :now, 'pending', :owner)
    ON CONFLICT (key) DO UPDATE SET owner = excluded.owner, done_at = excluded.done_at,
                                    job_id = excluded.job_id;

-- once_let_go --
-- The block failed: the next attempt does the operation.
DELETE FROM processed_operations WHERE key = :key AND owner = :owner AND state = 'pending';

-- once_done --
-- Recorded in the block's own transaction; nothing if another attempt took it over.
UPDATE processed_operations SET state = 'done', done_at = :now
 WHERE key = :key AND owner = :owner AND state = 'pending'
RETURNING key;

-- once_forget --
-- Forget a recorded operation: it may run again.
DELETE FROM processed_operations WHERE key = :key;
