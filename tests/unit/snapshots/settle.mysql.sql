-- statement 1
SELECT queuekit_jobs.id, queuekit_jobs.correlation_id, queuekit_jobs.queue_name, queuekit_jobs.attempts, queuekit_jobs.max_attempts, queuekit_jobs.task_identifier 
FROM queuekit_jobs 
WHERE queuekit_jobs.correlation_id IN (__[POSTCOMPILE_correlation_id_1]) AND queuekit_jobs.locked_by = %s ORDER BY queuekit_jobs.id FOR UPDATE

-- statement 2
DELETE FROM queuekit_jobs WHERE queuekit_jobs.id IN (__[POSTCOMPILE_id_1])

-- statement 3
UPDATE queuekit_jobs SET run_at=timestampadd(MICROSECOND, CASE queuekit_jobs.id WHEN %s THEN %s END * %s, UTC_TIMESTAMP(6)), last_error=CASE queuekit_jobs.id WHEN %s THEN %s END, updated_at=UTC_TIMESTAMP(6), locked_at=%s, locked_by=%s, correlation_id=%s, revision=(queuekit_jobs.revision + %s) WHERE queuekit_jobs.id IN (__[POSTCOMPILE_id_1])

-- statement 4
SELECT queuekit_jobs.id, queuekit_jobs.task_identifier, queuekit_jobs.payload, queuekit_jobs.priority, queuekit_jobs.queue_name, queuekit_jobs.run_at, queuekit_jobs.attempts, queuekit_jobs.max_attempts, queuekit_jobs.last_error, queuekit_jobs.created_at, queuekit_jobs.updated_at, queuekit_jobs.job_key, queuekit_jobs.job_key_mode, queuekit_jobs.flags, queuekit_jobs.locked_at, queuekit_jobs.locked_by, queuekit_jobs.correlation_id, queuekit_jobs.revision, queuekit_jobs.rate_limit_key, queuekit_jobs.trace_context 
FROM queuekit_jobs 
WHERE queuekit_jobs.id IN (__[POSTCOMPILE_id_1])

-- statement 5
UPDATE queuekit_job_history SET status=CASE queuekit_job_history.correlation_id WHEN %s THEN %s ELSE %s END, completed_at=UTC_TIMESTAMP(6), execution_time_ms=CASE queuekit_job_history.correlation_id WHEN %s THEN %s ELSE %s END, error_message=CASE queuekit_job_history.correlation_id WHEN %s THEN %s ELSE NULL END, error_stack=NULL, completed_steps=NULL, failed_steps=NULL, retry_from_step=NULL, partial_results=NULL WHERE queuekit_job_history.correlation_id IN (__[POSTCOMPILE_correlation_id_1]) AND queuekit_job_history.status = %s

-- statement 6
INSERT INTO queuekit_task_identifiers (identifier, created_at, last_used) VALUES (%s, UTC_TIMESTAMP(6), UTC_TIMESTAMP(6)) ON DUPLICATE KEY UPDATE last_used = UTC_TIMESTAMP(6)
