-- statement 1
WITH finished_jobs AS 
(DELETE FROM queuekit_jobs WHERE (queuekit_jobs.id, queuekit_jobs.correlation_id) IN (SELECT unnest(%(done_claims_first)s::UUID[]) AS unnest_1, unnest(%(done_claims_second)s::UUID[]) AS unnest_2) AND queuekit_jobs.locked_by = %(done_worker)s::VARCHAR RETURNING queuekit_jobs.correlation_id, queuekit_jobs.task_identifier, queuekit_jobs.queue_name), 
closed_history AS 
(UPDATE queuekit_job_history SET status=%(param_1)s::VARCHAR, completed_at=statement_timestamp(), execution_time_ms=outcome_times.execution_time_ms, error_message=NULL, error_stack=NULL, completed_steps=NULL, failed_steps=NULL, retry_from_step=NULL, partial_results=NULL FROM finished_jobs, (SELECT unnest(%(outcome_times_correlation_id)s::UUID[]) AS correlation_id, unnest(%(outcome_times_execution_time_ms)s::BIGINT[]) AS execution_time_ms) AS outcome_times WHERE queuekit_job_history.correlation_id = finished_jobs.correlation_id AND queuekit_job_history.correlation_id = outcome_times.correlation_id AND queuekit_job_history.status = %(status_1)s::VARCHAR)
 SELECT finished_jobs.correlation_id, finished_jobs.task_identifier 
FROM finished_jobs

-- statement 2
INSERT INTO queuekit_task_identifiers (identifier, created_at, last_used) VALUES (%(identifier_m0)s::VARCHAR, statement_timestamp(), statement_timestamp()) ON CONFLICT (identifier) DO UPDATE SET last_used = statement_timestamp()
