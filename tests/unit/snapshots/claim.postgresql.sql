-- statement 1
WITH candidates AS 
(SELECT queuekit_jobs.id AS id, queuekit_jobs.queue_name AS queue_name, queuekit_jobs.rate_limit_key AS rate_limit_key, queuekit_jobs.priority AS priority, queuekit_jobs.run_at AS run_at 
FROM queuekit_jobs 
WHERE queuekit_jobs.locked_at IS NULL AND queuekit_jobs.attempts < queuekit_jobs.max_attempts AND queuekit_jobs.run_at <= statement_timestamp() AND (queuekit_jobs.queue_name IS NULL OR NOT (EXISTS (SELECT * 
FROM queuekit_job_queues 
WHERE queuekit_job_queues.queue_name = queuekit_jobs.queue_name AND queuekit_job_queues.locked_at IS NOT NULL))) AND (queuekit_jobs.rate_limit_key IS NULL OR NOT (EXISTS (SELECT * 
FROM queuekit_rate_limits 
WHERE queuekit_rate_limits.key = queuekit_jobs.rate_limit_key AND queuekit_rate_limits.available_tokens <= %(available_tokens_1)s::INTEGER AND queuekit_rate_limits.next_refill_at > statement_timestamp()))) AND NOT (EXISTS (SELECT * 
FROM queuekit_task_identifiers 
WHERE queuekit_task_identifiers.identifier = queuekit_jobs.task_identifier AND queuekit_task_identifiers.paused_at IS NOT NULL)) AND queuekit_jobs.task_identifier = ANY (%(param_7)s::VARCHAR(255)[]) AND NOT (queuekit_jobs.flags ?| %(param_8)s::TEXT[]) ORDER BY queuekit_jobs.priority, queuekit_jobs.run_at, queuekit_jobs.id 
 LIMIT %(claim_limit)s::INTEGER FOR UPDATE OF queuekit_jobs SKIP LOCKED), 
free_queues AS 
(SELECT queuekit_job_queues.queue_name AS queue_name 
FROM queuekit_job_queues 
WHERE queuekit_job_queues.queue_name IN (SELECT candidates.queue_name 
FROM candidates) AND queuekit_job_queues.locked_at IS NULL FOR UPDATE SKIP LOCKED), 
locked AS 
(UPDATE queuekit_jobs SET attempts=(queuekit_jobs.attempts + %(attempts_1)s::INTEGER), updated_at=statement_timestamp(), locked_at=clock_timestamp(), locked_by=%(claim_worker)s::VARCHAR, correlation_id=gen_random_uuid(), revision=(queuekit_jobs.revision + %(revision_1)s::INTEGER) WHERE queuekit_jobs.id IN (SELECT chosen.id 
FROM (SELECT first_jobs.id AS id 
FROM (SELECT open_jobs.id AS id, open_jobs.queue_name AS queue_name, count(open_jobs.queue_name) OVER (ORDER BY open_jobs.priority, open_jobs.run_at, open_jobs.id) AS queued 
FROM (SELECT candidates.priority AS priority, candidates.run_at AS run_at, candidates.id AS id, candidates.queue_name AS queue_name, row_number() OVER (PARTITION BY candidates.queue_name ORDER BY candidates.priority, candidates.run_at, candidates.id) AS in_queue 
FROM candidates 
WHERE candidates.queue_name IS NULL OR candidates.queue_name IN (SELECT free_queues.queue_name 
FROM free_queues)) AS open_jobs 
WHERE open_jobs.queue_name IS NULL OR open_jobs.in_queue = %(in_queue_1)s::INTEGER) AS first_jobs 
WHERE first_jobs.queue_name IS NULL OR first_jobs.queued <= %(claim_max_queued)s::INTEGER) AS chosen) AND NOT (EXISTS (SELECT candidates.id 
FROM candidates 
WHERE candidates.rate_limit_key IS NOT NULL)) RETURNING queuekit_jobs.id, queuekit_jobs.task_identifier, queuekit_jobs.payload, queuekit_jobs.priority, queuekit_jobs.queue_name, queuekit_jobs.run_at, queuekit_jobs.attempts, queuekit_jobs.max_attempts, queuekit_jobs.last_error, queuekit_jobs.created_at, queuekit_jobs.updated_at, queuekit_jobs.job_key, queuekit_jobs.job_key_mode, queuekit_jobs.flags, queuekit_jobs.locked_at, queuekit_jobs.locked_by, queuekit_jobs.correlation_id, queuekit_jobs.revision, queuekit_jobs.rate_limit_key, queuekit_jobs.trace_context), 
opened AS 
(INSERT INTO queuekit_job_history (id, job_id, correlation_id, task_identifier, payload, queue_name, priority, flags, rate_limit_key, worker_id, status, started_at, queue_time_ms, attempt_number, created_at, expires_at) SELECT locked.correlation_id AS id, locked.id AS job_id, locked.correlation_id AS correlation_id, locked.task_identifier AS task_identifier, locked.payload AS payload, locked.queue_name AS queue_name, locked.priority AS priority, locked.flags AS flags, locked.rate_limit_key AS rate_limit_key, locked.locked_by AS worker_id, %(param_1)s::VARCHAR AS status, locked.locked_at AS started_at, CASE WHEN (CAST(floor(EXTRACT(epoch FROM locked.locked_at - locked.run_at) * %(param_2)s::INTEGER) AS BIGINT) < %(param_3)s::BIGINT) THEN %(param_4)s::INTEGER WHEN (CAST(floor(EXTRACT(epoch FROM locked.locked_at - locked.run_at) * %(param_2)s::INTEGER) AS BIGINT) > %(param_5)s::BIGINT) THEN %(param_6)s::INTEGER ELSE CAST(floor(EXTRACT(epoch FROM locked.locked_at - locked.run_at) * %(param_2)s::INTEGER) AS BIGINT) END AS queue_time_ms, locked.attempts AS attempt_number, locked.locked_at AS created_at, locked.locked_at + %(claim_retention_ms)s::BIGINT * interval '1 millisecond' AS expires_at 
FROM locked), 
locked_queues AS 
(UPDATE queuekit_job_queues SET locked_at=statement_timestamp(), locked_by=%(claim_worker)s::VARCHAR, updated_at=statement_timestamp() WHERE queuekit_job_queues.queue_name IN (SELECT locked.queue_name 
FROM locked))
 SELECT claimed.id, claimed.task_identifier, claimed.payload, claimed.priority, claimed.queue_name, claimed.run_at, claimed.attempts, claimed.max_attempts, claimed.last_error, claimed.created_at, claimed.updated_at, claimed.job_key, claimed.job_key_mode, claimed.flags, claimed.locked_at, claimed.locked_by, claimed.correlation_id, claimed.revision, claimed.rate_limit_key, claimed.trace_context, claimed.queue_free, claimed.queue_missing 
FROM (SELECT locked.id AS id, locked.task_identifier AS task_identifier, locked.payload AS payload, locked.priority AS priority, locked.queue_name AS queue_name, locked.run_at AS run_at, locked.attempts AS attempts, locked.max_attempts AS max_attempts, locked.last_error AS last_error, locked.created_at AS created_at, locked.updated_at AS updated_at, locked.job_key AS job_key, locked.job_key_mode AS job_key_mode, locked.flags AS flags, locked.locked_at AS locked_at, locked.locked_by AS locked_by, locked.correlation_id AS correlation_id, locked.revision AS revision, locked.rate_limit_key AS rate_limit_key, locked.trace_context AS trace_context, NULL AS queue_free, NULL AS queue_missing 
FROM locked UNION ALL SELECT candidates.id AS id, NULL AS task_identifier, NULL AS payload, candidates.priority AS priority, candidates.queue_name AS queue_name, candidates.run_at AS run_at, NULL AS attempts, NULL AS max_attempts, NULL AS last_error, NULL AS created_at, NULL AS updated_at, NULL AS job_key, NULL AS job_key_mode, NULL AS flags, NULL AS locked_at, NULL AS locked_by, NULL AS correlation_id, NULL AS revision, candidates.rate_limit_key AS rate_limit_key, NULL AS trace_context, candidates.queue_name IN (SELECT free_queues.queue_name 
FROM free_queues) AS queue_free, candidates.queue_name IS NOT NULL AND NOT (EXISTS (SELECT * 
FROM queuekit_job_queues 
WHERE queuekit_job_queues.queue_name = candidates.queue_name)) AS queue_missing 
FROM candidates 
WHERE (candidates.id NOT IN (SELECT locked.id 
FROM locked))) AS claimed ORDER BY claimed.priority, claimed.run_at, claimed.id
