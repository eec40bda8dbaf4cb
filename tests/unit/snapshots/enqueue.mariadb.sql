-- statement 1
INSERT INTO queuekit_job_queues (queue_name, created_at, updated_at) VALUES (%s, UTC_TIMESTAMP(6), UTC_TIMESTAMP(6)) ON DUPLICATE KEY UPDATE queue_name = queuekit_job_queues.queue_name

-- statement 2
INSERT INTO queuekit_task_identifiers (identifier, created_at, last_used) VALUES (%s, UTC_TIMESTAMP(6), UTC_TIMESTAMP(6)) ON DUPLICATE KEY UPDATE last_used = UTC_TIMESTAMP(6)

-- statement 3
INSERT INTO queuekit_jobs (id, task_identifier, payload, priority, queue_name, run_at, attempts, max_attempts, created_at, updated_at, job_key, job_key_mode, flags, rate_limit_key) VALUES (%s, %s, %s, %s, %s, coalesce(%s, UTC_TIMESTAMP(6)), %s, %s, UTC_TIMESTAMP(6), UTC_TIMESTAMP(6), %s, %s, %s, %s) RETURNING queuekit_jobs.id, queuekit_jobs.run_at, queuekit_jobs.created_at
