-- statement 1
INSERT INTO queuekit_task_identifiers (identifier, created_at, last_used) VALUES (%(identifier_m0)s::VARCHAR, statement_timestamp(), statement_timestamp()) ON CONFLICT (identifier) DO UPDATE SET last_used = statement_timestamp()

-- statement 2
SELECT queuekit_jobs.id 
FROM queuekit_jobs 
WHERE queuekit_jobs.job_key IN (__[POSTCOMPILE_job_key_1])

-- statement 3
INSERT INTO queuekit_jobs (id, task_identifier, payload, priority, queue_name, run_at, attempts, max_attempts, created_at, updated_at, job_key, job_key_mode, flags, revision, rate_limit_key) VALUES (%(id)s::UUID, %(task_identifier)s::VARCHAR, %(payload)s::JSONB, %(priority)s::INTEGER, %(queue_name)s::VARCHAR, coalesce(%(run_at_value)s::TIMESTAMP WITH TIME ZONE, statement_timestamp()), %(attempts)s::INTEGER, %(max_attempts)s::INTEGER, statement_timestamp(), statement_timestamp(), %(job_key)s::VARCHAR, %(job_key_mode)s::VARCHAR, %(flags)s::JSONB, (SELECT %(param_1)s::INTEGER AS anon_1 
FROM pg_notify(%(pg_notify_1)s::VARCHAR, CASE WHEN (coalesce(%(run_at_value)s::TIMESTAMP WITH TIME ZONE, statement_timestamp()) > statement_timestamp()) THEN CAST(EXTRACT(epoch FROM coalesce(%(run_at_value)s::TIMESTAMP WITH TIME ZONE, statement_timestamp()) - statement_timestamp()) AS TEXT) ELSE %(param_2)s::VARCHAR END)), %(rate_limit_key)s::VARCHAR) ON CONFLICT (job_key) DO UPDATE SET job_key = excluded.job_key RETURNING queuekit_jobs.id

-- statement 4
SELECT queuekit_jobs.id, queuekit_jobs.task_identifier, queuekit_jobs.payload, queuekit_jobs.priority, queuekit_jobs.queue_name, queuekit_jobs.run_at, queuekit_jobs.attempts, queuekit_jobs.max_attempts, queuekit_jobs.last_error, queuekit_jobs.created_at, queuekit_jobs.updated_at, queuekit_jobs.job_key, queuekit_jobs.job_key_mode, queuekit_jobs.flags, queuekit_jobs.locked_at, queuekit_jobs.locked_by, queuekit_jobs.correlation_id, queuekit_jobs.revision, queuekit_jobs.rate_limit_key, queuekit_jobs.trace_context 
FROM queuekit_jobs 
WHERE queuekit_jobs.id IN (__[POSTCOMPILE_id_1]) ORDER BY queuekit_jobs.id FOR UPDATE
