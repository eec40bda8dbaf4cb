-- statement 1
SELECT queuekit_jobs.id, queuekit_jobs.correlation_id, queuekit_jobs.queue_name, queuekit_jobs.attempts, queuekit_jobs.max_attempts, queuekit_jobs.task_identifier 
FROM queuekit_jobs 
WHERE queuekit_jobs.correlation_id IN (__[POSTCOMPILE_correlation_id_1]) AND queuekit_jobs.locked_by = %s ORDER BY queuekit_jobs.id FOR UPDATE

-- statement 2
DELETE FROM queuekit_jobs WHERE queuekit_jobs.id IN (__[POSTCOMPILE_id_1])

-- statement 3
UPDATE queuekit_job_history SET status=%s, completed_at=UTC_TIMESTAMP(6), execution_time_ms=CASE queuekit_job_history.correlation_id WHEN %s THEN %s ELSE %s END, error_message=NULL, error_stack=NULL, completed_steps=NULL, failed_steps=NULL, retry_from_step=NULL, partial_results=NULL WHERE queuekit_job_history.correlation_id IN (__[POSTCOMPILE_correlation_id_1]) AND queuekit_job_history.status = %s

-- statement 4
INSERT INTO queuekit_task_identifiers (identifier, created_at, last_used) VALUES (%s, UTC_TIMESTAMP(6), UTC_TIMESTAMP(6)) ON DUPLICATE KEY UPDATE last_used = UTC_TIMESTAMP(6)
