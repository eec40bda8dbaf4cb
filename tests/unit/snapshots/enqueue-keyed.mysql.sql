-- statement 1
INSERT INTO queuekit_task_identifiers (identifier, created_at, last_used) VALUES (%s, UTC_TIMESTAMP(6), UTC_TIMESTAMP(6)) ON DUPLICATE KEY UPDATE last_used = UTC_TIMESTAMP(6)

-- statement 2
SELECT queuekit_jobs.id 
FROM queuekit_jobs 
WHERE queuekit_jobs.job_key IN (__[POSTCOMPILE_job_key_1])

-- statement 3
INSERT INTO queuekit_jobs (id, task_identifier, payload, priority, queue_name, run_at, attempts, max_attempts, created_at, updated_at, job_key, job_key_mode, flags, rate_limit_key) VALUES (%s, %s, %s, %s, %s, coalesce(%s, UTC_TIMESTAMP(6)), %s, %s, UTC_TIMESTAMP(6), UTC_TIMESTAMP(6), %s, %s, %s, %s) ON DUPLICATE KEY UPDATE job_key = queuekit_jobs.job_key

-- statement 4
SELECT queuekit_jobs.id, queuekit_jobs.task_identifier, queuekit_jobs.payload, queuekit_jobs.priority, queuekit_jobs.queue_name, queuekit_jobs.run_at, queuekit_jobs.attempts, queuekit_jobs.max_attempts, queuekit_jobs.last_error, queuekit_jobs.created_at, queuekit_jobs.updated_at, queuekit_jobs.job_key, queuekit_jobs.job_key_mode, queuekit_jobs.flags, queuekit_jobs.locked_at, queuekit_jobs.locked_by, queuekit_jobs.correlation_id, queuekit_jobs.revision, queuekit_jobs.rate_limit_key, queuekit_jobs.trace_context 
FROM queuekit_jobs 
WHERE queuekit_jobs.id IN (__[POSTCOMPILE_id_1])

-- statement 5
SELECT queuekit_jobs.id, queuekit_jobs.task_identifier, queuekit_jobs.payload, queuekit_jobs.priority, queuekit_jobs.queue_name, queuekit_jobs.run_at, queuekit_jobs.attempts, queuekit_jobs.max_attempts, queuekit_jobs.last_error, queuekit_jobs.created_at, queuekit_jobs.updated_at, queuekit_jobs.job_key, queuekit_jobs.job_key_mode, queuekit_jobs.flags, queuekit_jobs.locked_at, queuekit_jobs.locked_by, queuekit_jobs.correlation_id, queuekit_jobs.revision, queuekit_jobs.rate_limit_key, queuekit_jobs.trace_context 
FROM queuekit_jobs 
WHERE queuekit_jobs.id IN (__[POSTCOMPILE_id_1]) ORDER BY queuekit_jobs.id FOR UPDATE
