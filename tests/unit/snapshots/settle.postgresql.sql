-- statement 1
SELECT queuekit_jobs.id, queuekit_jobs.correlation_id, queuekit_jobs.queue_name, queuekit_jobs.attempts, queuekit_jobs.max_attempts, queuekit_jobs.task_identifier 
FROM queuekit_jobs 
WHERE queuekit_jobs.correlation_id IN (__[POSTCOMPILE_correlation_id_1]) AND queuekit_jobs.locked_by = %(locked_by_1)s::VARCHAR ORDER BY queuekit_jobs.id FOR UPDATE

-- statement 2
DELETE FROM queuekit_jobs WHERE queuekit_jobs.id IN (__[POSTCOMPILE_id_1])

-- statement 3
UPDATE queuekit_jobs SET run_at=(statement_timestamp() + CASE queuekit_jobs.id WHEN %(param_1)s::UUID THEN %(param_2)s::INTEGER END * interval '1 millisecond'), last_error=CASE queuekit_jobs.id WHEN %(param_3)s::UUID THEN %(param_4)s::VARCHAR END, updated_at=statement_timestamp(), locked_at=%(locked_at)s::TIMESTAMP WITH TIME ZONE, locked_by=%(locked_by)s::VARCHAR, correlation_id=%(correlation_id)s::UUID, revision=(queuekit_jobs.revision + %(revision_1)s::INTEGER) WHERE queuekit_jobs.id IN (__[POSTCOMPILE_id_1]) RETURNING queuekit_jobs.id, queuekit_jobs.task_identifier, queuekit_jobs.payload, queuekit_jobs.priority, queuekit_jobs.queue_name, queuekit_jobs.run_at, queuekit_jobs.attempts, queuekit_jobs.max_attempts, queuekit_jobs.last_error, queuekit_jobs.created_at, queuekit_jobs.updated_at, queuekit_jobs.job_key, queuekit_jobs.job_key_mode, queuekit_jobs.flags, queuekit_jobs.locked_at, queuekit_jobs.locked_by, queuekit_jobs.correlation_id, queuekit_jobs.revision, queuekit_jobs.rate_limit_key, queuekit_jobs.trace_context

-- statement 4
UPDATE queuekit_job_history SET status=CASE queuekit_job_history.correlation_id WHEN %(param_1)s::UUID THEN %(param_2)s::VARCHAR ELSE %(param_3)s::VARCHAR END, completed_at=statement_timestamp(), execution_time_ms=CASE queuekit_job_history.correlation_id WHEN %(param_4)s::UUID THEN %(param_5)s::BIGINT ELSE %(param_6)s::BIGINT END, error_message=CASE queuekit_job_history.correlation_id WHEN %(param_7)s::UUID THEN %(param_8)s::VARCHAR ELSE NULL END, error_stack=NULL, completed_steps=NULL, failed_steps=NULL, retry_from_step=NULL, partial_results=NULL WHERE queuekit_job_history.correlation_id IN (__[POSTCOMPILE_correlation_id_1]) AND queuekit_job_history.status = %(status_1)s::VARCHAR

-- statement 5
INSERT INTO queuekit_task_identifiers (identifier, created_at, last_used) VALUES (%(identifier_m0)s::VARCHAR, statement_timestamp(), statement_timestamp()) ON CONFLICT (identifier) DO UPDATE SET last_used = statement_timestamp()
