-- statement 1
SELECT queuekit_jobs.id, queuekit_jobs.queue_name, queuekit_jobs.rate_limit_key, queuekit_jobs.priority, queuekit_jobs.run_at 
FROM queuekit_jobs 
WHERE queuekit_jobs.locked_at IS NULL AND queuekit_jobs.attempts < queuekit_jobs.max_attempts AND queuekit_jobs.run_at <= (strftime(?, ?) || ?) AND (queuekit_jobs.queue_name IS NULL OR NOT (EXISTS (SELECT * 
FROM queuekit_job_queues 
WHERE queuekit_job_queues.queue_name = queuekit_jobs.queue_name AND queuekit_job_queues.locked_at IS NOT NULL))) AND (queuekit_jobs.rate_limit_key IS NULL OR NOT (EXISTS (SELECT * 
FROM queuekit_rate_limits 
WHERE queuekit_rate_limits."key" = queuekit_jobs.rate_limit_key AND queuekit_rate_limits.available_tokens <= ? AND queuekit_rate_limits.next_refill_at > (strftime(?, ?) || ?)))) AND NOT (EXISTS (SELECT * 
FROM queuekit_task_identifiers 
WHERE queuekit_task_identifiers.identifier = queuekit_jobs.task_identifier AND queuekit_task_identifiers.paused_at IS NOT NULL)) AND queuekit_jobs.task_identifier IN (__[POSTCOMPILE_task_identifier_1]) AND NOT (EXISTS (SELECT 1 
FROM json_each(queuekit_jobs.flags) AS anon_1 
WHERE anon_1.value IN (__[POSTCOMPILE_value_1]))) ORDER BY queuekit_jobs.priority, queuekit_jobs.run_at, queuekit_jobs.id
 LIMIT ? OFFSET ?

-- statement 2
UPDATE queuekit_jobs SET attempts=(queuekit_jobs.attempts + ?), updated_at=(strftime(?, ?) || ?), locked_at=(strftime(?, ?) || ?), locked_by=?, correlation_id=(substr(lower(hex(randomblob(?))), ?, ?) || ? || substr(lower(hex(randomblob(?))), ?, ?) || substr(?, ? + abs(random()) % ?, ?) || substr(lower(hex(randomblob(?))), ?, ?)), revision=(queuekit_jobs.revision + ?) WHERE queuekit_jobs.id IN (__[POSTCOMPILE_id_1]) RETURNING id, task_identifier, payload, priority, queue_name, run_at, attempts, max_attempts, last_error, created_at, updated_at, job_key, job_key_mode, flags, locked_at, locked_by, correlation_id, revision, rate_limit_key, trace_context

-- statement 3
INSERT INTO queuekit_job_history (id, job_id, correlation_id, task_identifier, payload, queue_name, priority, flags, rate_limit_key, worker_id, status, started_at, queue_time_ms, attempt_number, created_at, expires_at) SELECT queuekit_jobs.correlation_id AS id, queuekit_jobs.id AS job_id, queuekit_jobs.correlation_id AS correlation_id, queuekit_jobs.task_identifier AS task_identifier, queuekit_jobs.payload AS payload, queuekit_jobs.queue_name AS queue_name, queuekit_jobs.priority AS priority, queuekit_jobs.flags AS flags, queuekit_jobs.rate_limit_key AS rate_limit_key, queuekit_jobs.locked_by AS worker_id, ? AS status, queuekit_jobs.locked_at AS started_at, CASE WHEN (CAST(round((julianday(queuekit_jobs.locked_at) - julianday(queuekit_jobs.run_at)) * ?) AS BIGINT) < ?) THEN ? WHEN (CAST(round((julianday(queuekit_jobs.locked_at) - julianday(queuekit_jobs.run_at)) * ?) AS BIGINT) > ?) THEN ? ELSE CAST(round((julianday(queuekit_jobs.locked_at) - julianday(queuekit_jobs.run_at)) * ?) AS BIGINT) END AS queue_time_ms, queuekit_jobs.attempts AS attempt_number, queuekit_jobs.locked_at AS created_at, strftime(?, queuekit_jobs.locked_at, ?) || ? AS expires_at 
FROM queuekit_jobs 
WHERE queuekit_jobs.id IN (__[POSTCOMPILE_id_1])
