-- statement 1
INSERT INTO queuekit_job_queues (queue_name, created_at, updated_at) VALUES (?, (strftime(?, ?) || ?), (strftime(?, ?) || ?)) ON CONFLICT (queue_name) DO NOTHING

-- statement 2
INSERT INTO queuekit_task_identifiers (identifier, created_at, last_used) VALUES (?, (strftime(?, ?) || ?), (strftime(?, ?) || ?)) ON CONFLICT (identifier) DO UPDATE SET last_used = (strftime(?, ?) || ?)

-- statement 3
INSERT INTO queuekit_jobs (id, task_identifier, payload, priority, queue_name, run_at, attempts, max_attempts, created_at, updated_at, job_key, job_key_mode, flags, rate_limit_key) VALUES (?, ?, ?, ?, ?, coalesce(?, strftime(?, ?) || ?), ?, ?, (strftime(?, ?) || ?), (strftime(?, ?) || ?), ?, ?, ?, ?) RETURNING id, run_at, created_at
