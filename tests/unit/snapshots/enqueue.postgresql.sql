-- statement 1
INSERT INTO queuekit_job_queues (queue_name, created_at, updated_at) VALUES (%(queue_name_m0)s::VARCHAR, statement_timestamp(), statement_timestamp()) ON CONFLICT (queue_name) DO NOTHING

-- statement 2
INSERT INTO queuekit_task_identifiers (identifier, created_at, last_used) VALUES (%(identifier_m0)s::VARCHAR, statement_timestamp(), statement_timestamp()) ON CONFLICT (identifier) DO UPDATE SET last_used = statement_timestamp()

-- statement 3
INSERT INTO queuekit_jobs (id, task_identifier, payload, priority, queue_name, run_at, attempts, max_attempts, created_at, updated_at, job_key, job_key_mode, flags, revision, rate_limit_key) VALUES (%(id)s::UUID, %(task_identifier)s::VARCHAR, %(payload)s::JSONB, %(priority)s::INTEGER, %(queue_name)s::VARCHAR, coalesce(%(run_at_value)s::TIMESTAMP WITH TIME ZONE, statement_timestamp()), %(attempts)s::INTEGER, %(max_attempts)s::INTEGER, statement_timestamp(), statement_timestamp(), %(job_key)s::VARCHAR, %(job_key_mode)s::VARCHAR, %(flags)s::JSONB, (SELECT %(param_1)s::INTEGER AS anon_1 
FROM pg_notify(%(pg_notify_1)s::VARCHAR, CASE WHEN (coalesce(%(run_at_value)s::TIMESTAMP WITH TIME ZONE, statement_timestamp()) > statement_timestamp()) THEN CAST(EXTRACT(epoch FROM coalesce(%(run_at_value)s::TIMESTAMP WITH TIME ZONE, statement_timestamp()) - statement_timestamp()) AS TEXT) ELSE %(param_2)s::VARCHAR END)), %(rate_limit_key)s::VARCHAR) RETURNING queuekit_jobs.id, queuekit_jobs.run_at, queuekit_jobs.created_at
