-- statement 1
SELECT queuekit_jobs.id, queuekit_jobs.queue_name, queuekit_jobs.rate_limit_key, queuekit_jobs.priority, queuekit_jobs.run_at 
FROM queuekit_jobs 
WHERE queuekit_jobs.locked_at IS NULL AND queuekit_jobs.attempts < queuekit_jobs.max_attempts AND queuekit_jobs.run_at <= UTC_TIMESTAMP(6) AND (queuekit_jobs.queue_name IS NULL OR NOT (EXISTS (SELECT * 
FROM queuekit_job_queues 
WHERE queuekit_job_queues.queue_name = queuekit_jobs.queue_name AND queuekit_job_queues.locked_at IS NOT NULL))) AND (queuekit_jobs.rate_limit_key IS NULL OR NOT (EXISTS (SELECT * 
FROM queuekit_rate_limits 
WHERE queuekit_rate_limits.`key` = queuekit_jobs.rate_limit_key AND queuekit_rate_limits.available_tokens <= %s AND queuekit_rate_limits.next_refill_at > UTC_TIMESTAMP(6)))) AND NOT (EXISTS (SELECT * 
FROM queuekit_task_identifiers 
WHERE queuekit_task_identifiers.identifier = queuekit_jobs.task_identifier AND queuekit_task_identifiers.paused_at IS NOT NULL)) AND queuekit_jobs.task_identifier IN (__[POSTCOMPILE_task_identifier_1]) AND json_contains(queuekit_jobs.flags, %s) != %s ORDER BY queuekit_jobs.priority, queuekit_jobs.run_at, queuekit_jobs.id 
 LIMIT %s FOR UPDATE SKIP LOCKED

-- statement 2
UPDATE queuekit_jobs SET attempts=(queuekit_jobs.attempts + %s), updated_at=UTC_TIMESTAMP(6), locked_at=UTC_TIMESTAMP(6), locked_by=%s, correlation_id=CASE queuekit_jobs.id WHEN %s THEN %s WHEN %s THEN %s END, revision=(queuekit_jobs.revision + %s) WHERE queuekit_jobs.id IN (__[POSTCOMPILE_id_1])

-- statement 3
SELECT queuekit_jobs.id, queuekit_jobs.task_identifier, queuekit_jobs.payload, queuekit_jobs.priority, queuekit_jobs.queue_name, queuekit_jobs.run_at, queuekit_jobs.attempts, queuekit_jobs.max_attempts, queuekit_jobs.last_error, queuekit_jobs.created_at, queuekit_jobs.updated_at, queuekit_jobs.job_key, queuekit_jobs.job_key_mode, queuekit_jobs.flags, queuekit_jobs.locked_at, queuekit_jobs.locked_by, queuekit_jobs.correlation_id, queuekit_jobs.revision, queuekit_jobs.rate_limit_key, queuekit_jobs.trace_context 
FROM queuekit_jobs 
WHERE queuekit_jobs.id IN (__[POSTCOMPILE_id_1])

-- statement 4
INSERT INTO queuekit_job_history (id, job_id, correlation_id, task_identifier, payload, queue_name, priority, flags, rate_limit_key, worker_id, status, started_at, queue_time_ms, attempt_number, created_at, expires_at) SELECT queuekit_jobs.correlation_id AS id, queuekit_jobs.id AS job_id, queuekit_jobs.correlation_id AS correlation_id, queuekit_jobs.task_identifier AS task_identifier, queuekit_jobs.payload AS payload, queuekit_jobs.queue_name AS queue_name, queuekit_jobs.priority AS priority, queuekit_jobs.flags AS flags, queuekit_jobs.rate_limit_key AS rate_limit_key, queuekit_jobs.locked_by AS worker_id, %s AS status, queuekit_jobs.locked_at AS started_at, CASE WHEN (CAST(floor(timestampdiff(MICROSECOND, queuekit_jobs.run_at, queuekit_jobs.locked_at) / %s) AS SIGNED INTEGER) < %s) THEN %s WHEN (CAST(floor(timestampdiff(MICROSECOND, queuekit_jobs.run_at, queuekit_jobs.locked_at) / %s) AS SIGNED INTEGER) > %s) THEN %s ELSE CAST(floor(timestampdiff(MICROSECOND, queuekit_jobs.run_at, queuekit_jobs.locked_at) / %s) AS SIGNED INTEGER) END AS queue_time_ms, queuekit_jobs.attempts AS attempt_number, queuekit_jobs.locked_at AS created_at, timestampadd(MICROSECOND, %s, queuekit_jobs.locked_at) AS expires_at 
FROM queuekit_jobs 
WHERE queuekit_jobs.id IN (__[POSTCOMPILE_id_1])
