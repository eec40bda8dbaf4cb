-- statement 1
SELECT queuekit_jobs.id, queuekit_jobs.correlation_id, queuekit_jobs.queue_name, queuekit_jobs.attempts, queuekit_jobs.max_attempts, queuekit_jobs.task_identifier 
FROM queuekit_jobs 
WHERE queuekit_jobs.correlation_id IN (__[POSTCOMPILE_correlation_id_1]) AND queuekit_jobs.locked_by = ? ORDER BY queuekit_jobs.id

-- statement 2
DELETE FROM queuekit_jobs WHERE queuekit_jobs.id IN (__[POSTCOMPILE_id_1])

-- statement 3
UPDATE queuekit_job_history SET status=?, completed_at=(strftime(?, ?) || ?), execution_time_ms=CASE queuekit_job_history.correlation_id WHEN ? THEN ? ELSE ? END, error_message=NULL, error_stack=NULL, completed_steps=NULL, failed_steps=NULL, retry_from_step=NULL, partial_results=NULL WHERE queuekit_job_history.correlation_id IN (__[POSTCOMPILE_correlation_id_1]) AND queuekit_job_history.status = ?

-- statement 4
INSERT INTO queuekit_task_identifiers (identifier, created_at, last_used) VALUES (?, (strftime(?, ?) || ?), (strftime(?, ?) || ?)) ON CONFLICT (identifier) DO UPDATE SET last_used = (strftime(?, ?) || ?)
