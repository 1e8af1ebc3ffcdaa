"""Numbered schema migrations; ``PRAGMA user_version`` records how far a file has come.

Append a new entry to ``MIGRATIONS`` for every change; never edit a released one,
so a database written by an older version opens in a newer one.
"""

from __future__ import annotations

MIGRATIONS: list[tuple[int, str]] = [
    (
        1,
        """
        CREATE TABLE tasks (
            id TEXT PRIMARY KEY,
            kind TEXT NOT NULL,
            mode TEXT NOT NULL,
            status TEXT NOT NULL,
            name TEXT,
            label TEXT,
            params TEXT,
            spec TEXT,
            result TEXT,
            error TEXT,
            progress TEXT,
            task_key TEXT,
            idempotency_key TEXT,
            payload_hash TEXT,
            queue TEXT NOT NULL DEFAULT 'default',
            priority INTEGER NOT NULL DEFAULT 0,
            owner TEXT,
            origin TEXT,
            attempts INTEGER NOT NULL DEFAULT 0,
            max_retries INTEGER NOT NULL DEFAULT 0,
            timeout REAL,
            memory_limit_mb INTEGER,
            not_before REAL,
            parent_id TEXT,
            relationship TEXT,
            worker_id TEXT,
            lease_expires_at REAL,
            cancel_requested INTEGER NOT NULL DEFAULT 0,
            confirmation TEXT,
            callback_url TEXT,
            resource_usage TEXT,
            content_hashes TEXT,
            created_at REAL NOT NULL,
            started_at REAL,
            finished_at REAL,
            updated_at REAL NOT NULL
        );
        -- newest-first listing walks the primary key backwards; these serve the filters
        CREATE INDEX tasks_by_status ON tasks(status, id);
        CREATE INDEX tasks_by_owner ON tasks(owner, id);
        CREATE INDEX tasks_by_name ON tasks(name, id);
        CREATE INDEX tasks_by_parent ON tasks(parent_id) WHERE parent_id IS NOT NULL;
        CREATE INDEX tasks_by_key ON tasks(task_key, id) WHERE task_key IS NOT NULL;
        CREATE INDEX tasks_by_worker ON tasks(worker_id) WHERE status = 'running';
        -- what a worker's claim scans: queued jobs of one queue by priority then age
        CREATE INDEX tasks_claimable ON tasks(queue, priority DESC, id)
            WHERE status = 'queued' AND mode = 'job';
        -- the store's own guards: one active task per key, one task per idempotency key
        CREATE UNIQUE INDEX tasks_active_key ON tasks(ifnull(owner, ''), task_key)
            WHERE task_key IS NOT NULL AND status IN ('queued', 'running');
        CREATE UNIQUE INDEX tasks_idempotency ON tasks(ifnull(owner, ''), idempotency_key)
            WHERE idempotency_key IS NOT NULL;

        CREATE TABLE events (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            task_id TEXT NOT NULL,
            type TEXT NOT NULL,
            ts REAL NOT NULL,
            owner TEXT,
            task TEXT
        );
        CREATE INDEX events_by_task ON events(task_id, id);

        CREATE TABLE task_logs (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            task_id TEXT NOT NULL,
            ts REAL NOT NULL,
            stream TEXT NOT NULL,
            text TEXT NOT NULL
        );
        CREATE INDEX task_logs_by_task ON task_logs(task_id, seq);

        CREATE TABLE artifacts (
            task_id TEXT NOT NULL,
            name TEXT NOT NULL,
            size INTEGER NOT NULL,
            sha256 TEXT NOT NULL,
            content_type TEXT NOT NULL,
            created_at REAL NOT NULL,
            PRIMARY KEY (task_id, name)
        );

        CREATE TABLE workers (
            id TEXT PRIMARY KEY,
            kind TEXT NOT NULL,
            pid INTEGER NOT NULL,
            host TEXT NOT NULL,
            pid_started_at REAL,
            queues TEXT,
            started_at REAL NOT NULL,
            heartbeat_at REAL NOT NULL,
            stopped_at REAL
        );
        """,
    ),
    (
        2,
        """
        -- every event paid for an entry at its task's place in events_by_task, a
        -- random spot in a large index: a fifth of the queue's database time. A
        -- task's events all come after its task.created event, so one entry per
        -- task (appended, as ids grow with time) is enough to start a per-task
        -- replay at the right place.
        DROP INDEX events_by_task;
        CREATE INDEX events_task_created ON events(task_id) WHERE type = 'task.created';
        """,
    ),
    (
        3,
        """
        -- event ids without AUTOINCREMENT: it rewrote the sqlite_sequence row on every
        -- insert and dirtied its page in every commit, 5% of the queue's throughput.
        -- A plain rowid is the largest id plus one, so ids still never go back as
        -- long as the newest event stays: pruning keeps it, and a feed already pruned
        -- empty keeps its old high-water mark as a 'feed.mark' row readers skip.
        CREATE TABLE events_v3 (
            id INTEGER PRIMARY KEY,
            task_id TEXT NOT NULL,
            type TEXT NOT NULL,
            ts REAL NOT NULL,
            owner TEXT,
            task TEXT
        );
        INSERT INTO events_v3 (id, task_id, type, ts, owner, task)
            SELECT id, task_id, type, ts, owner, task FROM events ORDER BY id;
        INSERT INTO events_v3 (id, task_id, type, ts)
            SELECT seq, '', 'feed.mark', 0 FROM sqlite_sequence
            WHERE name = 'events' AND seq > (SELECT ifnull(max(id), 0) FROM events);
        DROP TABLE events;
        ALTER TABLE events_v3 RENAME TO events;
        CREATE INDEX events_task_created ON events(task_id) WHERE type = 'task.created';
        DELETE FROM sqlite_sequence WHERE name = 'events';
        """,
    ),
    (
        4,
        """
        -- process: where a running job's work lives outside its worker (process group,
        -- host, start time), so a reaper can end a leftover group before a retry runs.
        -- value_notes: what the storage rule changed in a stored value (NaN kept as
        -- text, a result too large or too deep moved to an artifact).
        ALTER TABLE tasks ADD COLUMN process TEXT;
        ALTER TABLE tasks ADD COLUMN value_notes TEXT;
        """,
    ),
    (
        5,
        """
        -- lost_attempts: attempts that ended because their worker was lost (the work
        -- did not fail), bounded apart from max_retries, which counts failures only.
        -- retry_reason: why the latest attempt after the first began ("worker lost",
        -- or the failure that was retried), for the views' "attempt 2 of 3: ...".
        ALTER TABLE tasks ADD COLUMN lost_attempts INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE tasks ADD COLUMN retry_reason TEXT;
        """,
    ),
    (
        6,
        """
        -- schedules: a job definition (the POST /api/tasks body as given, and the spec and
        -- options it was validated into) with a cron rule. next_run_at is NULL while
        -- paused; firing moves it by compare-and-set, so two processes never both win.
        CREATE TABLE schedules (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            owner TEXT,
            cron TEXT NOT NULL,
            timezone TEXT NOT NULL,
            catch_up TEXT NOT NULL,
            paused INTEGER NOT NULL DEFAULT 0,
            job TEXT NOT NULL,
            spec TEXT NOT NULL,
            options TEXT NOT NULL,
            next_run_at REAL,
            last_run_at REAL,
            last_task_id TEXT,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL
        );
        CREATE INDEX schedules_due ON schedules(next_run_at) WHERE next_run_at IS NOT NULL;
        CREATE INDEX schedules_by_owner ON schedules(owner, id);
        -- schedule_id: the schedule a job was fired by (kept when the schedule is deleted)
        ALTER TABLE tasks ADD COLUMN schedule_id TEXT;
        CREATE INDEX tasks_by_schedule ON tasks(schedule_id, id) WHERE schedule_id IS NOT NULL;
        """,
    ),
    (
        7,
        """
        -- a million finished tasks: every list filter and sort the views page through
        -- enters an index at its cursor instead of scanning the table. Sort keys are
        -- the exact expressions of task_sql.SORT_SQL (an index on an expression serves
        -- only that expression), then id DESC: ties go newest first. The progress and
        -- duration sorts have no index (their keys change while a task runs).
        CREATE INDEX tasks_by_kind ON tasks(kind, id);
        -- also what pruning walks, oldest first
        CREATE INDEX tasks_by_finished ON tasks(ifnull(finished_at, -1.0), id DESC);
        CREATE INDEX tasks_by_started ON tasks(ifnull(started_at, -1.0), id DESC);
        CREATE INDEX tasks_by_label ON tasks(
            lower(coalesce(nullif(label, ''), nullif(name, ''), kind)), id DESC);
        CREATE INDEX tasks_by_owner_sort ON tasks(lower(ifnull(owner, '')), id DESC);
        CREATE INDEX tasks_by_origin ON tasks(
            CASE WHEN json_valid(origin) THEN ifnull(lower(coalesce(
            nullif(json_extract(origin, '$.notebook'), ''),
            nullif(json_extract(origin, '$.notebook_path'), ''),
            nullif(json_extract(origin, '$.path'), ''),
            json_extract(origin, '$.type'))), '') ELSE '' END, id DESC);
        CREATE INDEX tasks_by_status_sort ON tasks(
            CASE status WHEN 'running' THEN 0 WHEN 'queued' THEN 1 ELSE 2 END, id DESC);
        CREATE INDEX tasks_by_priority ON tasks(priority, id DESC);
        """,
    ),
    (
        8,
        """
        -- the progress and duration sorts over a long history: their keys are fixed once
        -- a task has ended, so the indexes hold ended tasks only (task_sql.ENDED_SORT_SQL,
        -- exactly) and cost a running task's progress writes nothing; the few tasks not
        -- ended are sorted apart and merged (task_sql.page_query). An index per
        -- direction: most tasks report no progress and tie at 1.0 (succeeded) or
        -- -1.0, durations tie too (never started, timed to the same tick), and walked
        -- backwards an ascending index gives ties oldest first, so a descending page
        -- would sort the whole tie
        CREATE INDEX tasks_by_duration ON tasks(
            CASE WHEN started_at IS NULL THEN -1.0
            ELSE max(0.0, finished_at - started_at) END, id DESC)
            WHERE finished_at IS NOT NULL;
        CREATE INDEX tasks_by_duration_desc ON tasks(
            CASE WHEN started_at IS NULL THEN -1.0
            ELSE max(0.0, finished_at - started_at) END DESC, id DESC)
            WHERE finished_at IS NOT NULL;
        CREATE INDEX tasks_by_progress ON tasks(
            CASE WHEN json_valid(progress)
            AND json_type(progress, '$.total') IN ('integer', 'real')
            AND json_extract(progress, '$.total') > 0
            THEN ifnull(json_extract(progress, '$.current'), 0) * 1.0
            / json_extract(progress, '$.total')
            WHEN status = 'succeeded' THEN 1.0 ELSE -1.0 END, id DESC)
            WHERE finished_at IS NOT NULL;
        CREATE INDEX tasks_by_progress_desc ON tasks(
            CASE WHEN json_valid(progress)
            AND json_type(progress, '$.total') IN ('integer', 'real')
            AND json_extract(progress, '$.total') > 0
            THEN ifnull(json_extract(progress, '$.current'), 0) * 1.0
            / json_extract(progress, '$.total')
            WHEN status = 'succeeded' THEN 1.0 ELSE -1.0 END DESC, id DESC)
            WHERE finished_at IS NOT NULL;
        """,
    ),
    (
        9,
        """
        -- the search box over a long history: an index of the one, two and three
        -- character pieces of each task's label and name (task_sql.search_grams), so a
        -- rare piece of text is found among a million tasks without reading them all.
        -- Contentless (the text is in tasks already) and without positions: it only
        -- narrows the candidates, the search's own test on the row decides. Kept in
        -- batches beside the writes (task_sql.tx_index_search), so neither a submit nor
        -- a prune pays for it
        CREATE VIRTUAL TABLE task_search USING fts5(
            grams, content='', detail=none, columnsize=0, tokenize='ascii');
        -- its segments merged a little after each batch (tx_index_search), never a whole
        -- level inside one: over a million tasks that held a batch up to 160 ms
        INSERT INTO task_search (task_search, rank) VALUES ('automerge', 0);
        INSERT INTO task_search (task_search, rank) VALUES ('crisismerge', 64);
        -- every task at or below indexed_to (a rowid) is in the index, those above are
        -- read directly; pending_max is the highest rowid deleted whose text the index
        -- still holds
        CREATE TABLE task_search_mark (
            indexed_to INTEGER NOT NULL, pending_max INTEGER NOT NULL);
        INSERT INTO task_search_mark (indexed_to, pending_max) VALUES (0, 0);
        -- changes to indexed tasks, for the index in their order: an index without
        -- content forgets a text only when told it again, and told in a batch later a
        -- deletion costs a prune no more than a row here
        CREATE TABLE task_search_queue (
            seq INTEGER PRIMARY KEY, task_rowid INTEGER NOT NULL,
            op TEXT NOT NULL CHECK (op IN ('delete', 'insert')), text TEXT NOT NULL);
        -- relabelled tasks waiting to go in, which a search reads directly meanwhile
        CREATE INDEX task_search_queue_inserts ON task_search_queue(task_rowid)
            WHERE op = 'insert';
        -- when the deleted task was the highest indexed rowid the mark steps down to the
        -- one below, since a new row may take that rowid again; such a row waits until
        -- the old text is out (task_sql.tx_index_search)
        CREATE TRIGGER task_search_forget AFTER DELETE ON tasks
        WHEN old.rowid <= (SELECT indexed_to FROM task_search_mark)
        BEGIN
            INSERT INTO task_search_queue (task_rowid, op, text) VALUES (old.rowid,
                'delete',
                lower(ifnull(old.label, '')) || char(10) || lower(ifnull(old.name, '')));
            UPDATE task_search_mark SET pending_max = max(pending_max, old.rowid),
                indexed_to = CASE WHEN indexed_to = old.rowid THEN
                    (SELECT ifnull(max(rowid), 0) FROM tasks WHERE rowid < old.rowid)
                    ELSE indexed_to END;
        END;
        -- a new label or name (nothing in jupyter-tasks changes them): the old text out
        -- and the new one in, in turn with the changes before
        CREATE TRIGGER task_search_relabel AFTER UPDATE OF label, name ON tasks
        WHEN old.rowid <= (SELECT indexed_to FROM task_search_mark)
        BEGIN
            INSERT INTO task_search_queue (task_rowid, op, text) VALUES (old.rowid,
                'delete',
                lower(ifnull(old.label, '')) || char(10) || lower(ifnull(old.name, '')));
            INSERT INTO task_search_queue (task_rowid, op, text) VALUES (new.rowid,
                'insert',
                lower(ifnull(new.label, '')) || char(10) || lower(ifnull(new.name, '')));
        END;
        """,
    ),
    (
        10,
        """
        -- the indexed tasks inserted out of id order: an id below one indexed before it
        -- (an import, two processes' submits crossing). Among the other indexed tasks
        -- the rowid order is the created order, so a search's newest page can read the
        -- index's hits from its start down instead of every hit
        -- (Store._page_from_near_hits). Kept by the indexer (task_sql.tx_index_search),
        -- with max_id the highest id it has met: a trigger on every insert cost a
        -- submit ~40 us
        ALTER TABLE task_search_mark ADD COLUMN max_id TEXT NOT NULL DEFAULT '';
        CREATE TABLE task_disorder (task_rowid INTEGER PRIMARY KEY);
        INSERT INTO task_disorder (task_rowid)
            SELECT rowid FROM (SELECT rowid, id, max(id) OVER (ORDER BY rowid
                ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS before FROM tasks
                WHERE rowid <= (SELECT indexed_to FROM task_search_mark))
            WHERE id < before;
        UPDATE task_search_mark SET max_id = ifnull(
            (SELECT max(id) FROM tasks WHERE rowid <= indexed_to), '');
        -- as in version 9, and a deleted task leaves task_disorder too
        DROP TRIGGER IF EXISTS task_search_forget;
        CREATE TRIGGER task_search_forget AFTER DELETE ON tasks
        WHEN old.rowid <= (SELECT indexed_to FROM task_search_mark)
        BEGIN
            INSERT INTO task_search_queue (task_rowid, op, text) VALUES (old.rowid,
                'delete',
                lower(ifnull(old.label, '')) || char(10) || lower(ifnull(old.name, '')));
            UPDATE task_search_mark SET pending_max = max(pending_max, old.rowid),
                indexed_to = CASE WHEN indexed_to = old.rowid THEN
                    (SELECT ifnull(max(rowid), 0) FROM tasks WHERE rowid < old.rowid)
                    ELSE indexed_to END;
            DELETE FROM task_disorder WHERE task_rowid = old.rowid;
        END;
        """,
    ),
    (
        11,
        """
        -- a job's own writes leave the history indexes alone. A task is fresh (fresh = 1)
        -- from its insert until some time after it ends; the store then settles ended
        -- tasks in batches (task_sql.tx_settle: fresh becomes NULL), and only settled
        -- tasks are in the indexes of the list's filters and sorts, where a batch's
        -- entries share pages. A job's commits had written them all (32 WAL frames a
        -- job, 11 now; bench_engine_write_cost.py). A list reads the settled tasks
        -- along those indexes and the fresh ones (running, queued lately, ended in the
        -- last second: few) apart, and merges them (task_sql.merged_parts).
        -- Jobs that wait in the queue are settled too after a while (a backlog, which
        -- the fresh part would read whole): the indexes then follow their keys as they
        -- start and end, as they did for every task before. A task inserted without
        -- fresh (by a process of the version before) is settled: only slower to write.
        ALTER TABLE tasks ADD COLUMN fresh INTEGER;
        DROP INDEX tasks_by_status;
        DROP INDEX tasks_by_owner;
        DROP INDEX tasks_by_name;
        DROP INDEX tasks_by_kind;
        DROP INDEX tasks_by_finished;
        DROP INDEX tasks_by_started;
        DROP INDEX tasks_by_label;
        DROP INDEX tasks_by_owner_sort;
        DROP INDEX tasks_by_origin;
        DROP INDEX tasks_by_status_sort;
        DROP INDEX tasks_by_priority;
        DROP INDEX tasks_by_duration;
        DROP INDEX tasks_by_duration_desc;
        DROP INDEX tasks_by_progress;
        DROP INDEX tasks_by_progress_desc;
        UPDATE tasks SET fresh = 1 WHERE finished_at IS NULL OR status IN ('queued', 'running');
        CREATE INDEX tasks_fresh ON tasks(id) WHERE fresh = 1;
        CREATE INDEX tasks_settling ON tasks(id) WHERE fresh = 1 AND finished_at IS NOT NULL;
        -- the indexes of versions 1, 7 and 8, of the settled tasks. The filters' hold
        -- fresh too (always NULL there): a count of the settled tasks by status or owner
        -- then reads the index alone, where it read every row
        CREATE INDEX tasks_by_status ON tasks(status, id, fresh) WHERE fresh IS NULL;
        CREATE INDEX tasks_by_owner ON tasks(owner, id, fresh) WHERE fresh IS NULL;
        CREATE INDEX tasks_by_name ON tasks(name, id, fresh) WHERE fresh IS NULL;
        CREATE INDEX tasks_by_kind ON tasks(kind, id, fresh) WHERE fresh IS NULL;
        CREATE INDEX tasks_by_finished ON tasks(ifnull(finished_at, -1.0), id DESC)
            WHERE fresh IS NULL;
        CREATE INDEX tasks_by_started ON tasks(ifnull(started_at, -1.0), id DESC)
            WHERE fresh IS NULL;
        CREATE INDEX tasks_by_label ON tasks(
            lower(coalesce(nullif(label, ''), nullif(name, ''), kind)), id DESC)
            WHERE fresh IS NULL;
        CREATE INDEX tasks_by_owner_sort ON tasks(lower(ifnull(owner, '')), id DESC)
            WHERE fresh IS NULL;
        CREATE INDEX tasks_by_origin ON tasks(
            CASE WHEN json_valid(origin) THEN ifnull(lower(coalesce(
            nullif(json_extract(origin, '$.notebook'), ''),
            nullif(json_extract(origin, '$.notebook_path'), ''),
            nullif(json_extract(origin, '$.path'), ''),
            json_extract(origin, '$.type'))), '') ELSE '' END, id DESC)
            WHERE fresh IS NULL;
        CREATE INDEX tasks_by_status_sort ON tasks(
            CASE status WHEN 'running' THEN 0 WHEN 'queued' THEN 1 ELSE 2 END, id DESC)
            WHERE fresh IS NULL;
        CREATE INDEX tasks_by_priority ON tasks(priority, id DESC) WHERE fresh IS NULL;
        CREATE INDEX tasks_by_duration ON tasks(
            CASE WHEN started_at IS NULL THEN -1.0
            ELSE max(0.0, finished_at - started_at) END, id DESC)
            WHERE finished_at IS NOT NULL AND fresh IS NULL;
        CREATE INDEX tasks_by_duration_desc ON tasks(
            CASE WHEN started_at IS NULL THEN -1.0
            ELSE max(0.0, finished_at - started_at) END DESC, id DESC)
            WHERE finished_at IS NOT NULL AND fresh IS NULL;
        CREATE INDEX tasks_by_progress ON tasks(
            CASE WHEN json_valid(progress)
            AND json_type(progress, '$.total') IN ('integer', 'real')
            AND json_extract(progress, '$.total') > 0
            THEN ifnull(json_extract(progress, '$.current'), 0) * 1.0
            / json_extract(progress, '$.total')
            WHEN status = 'succeeded' THEN 1.0 ELSE -1.0 END, id DESC)
            WHERE finished_at IS NOT NULL AND fresh IS NULL;
        CREATE INDEX tasks_by_progress_desc ON tasks(
            CASE WHEN json_valid(progress)
            AND json_type(progress, '$.total') IN ('integer', 'real')
            AND json_extract(progress, '$.total') > 0
            THEN ifnull(json_extract(progress, '$.current'), 0) * 1.0
            / json_extract(progress, '$.total')
            WHEN status = 'succeeded' THEN 1.0 ELSE -1.0 END DESC, id DESC)
            WHERE finished_at IS NOT NULL AND fresh IS NULL;
        """,
    ),
    (
        12,
        """
        -- one owner's counts by queue and status (GET /api/tasks/stats for a user who
        -- sees only their own tasks: the panel's status bar and status filter) read this
        -- index alone, fresh in it too as in the filters' indexes. Along tasks_by_owner
        -- they read every row of the owner's history: a third of a million tasks took
        -- 320 ms, 29 ms here (bench_million.py); built in 0.9 s over a million tasks
        CREATE INDEX tasks_owner_counts ON tasks(owner, status, queue, fresh)
            WHERE fresh IS NULL;
        """,
    ),
    (
        13,
        """
        -- one task's events along an index of their own again (migration 2 dropped it).
        -- From the task's task.created event, a replay read every later event of every
        -- task (a task finished long ago: all the events since), and a task that runs
        -- at once (a background cell, run_blocking) has no such event, so its replay
        -- read the whole table: 150-214 ms beside 2 million events. Task ids begin with
        -- their time, so a new event's entry lands among the newest tasks' entries,
        -- not at a random spot as when migration 2 measured it
        CREATE INDEX events_by_task ON events(task_id, id);
        DROP INDEX events_task_created;
        """,
    ),
    (
        14,
        """
        -- GET /api/tasks?idempotency_key= (did a retried submit go in?) walked the whole
        -- history along the id: the guard's unique index leads with the owner. Only
        -- tasks with a key pay for an entry
        CREATE INDEX tasks_by_idempotency_key ON tasks(idempotency_key, id)
            WHERE idempotency_key IS NOT NULL;
        """,
    ),
    (
        15,
        """
        -- one owner's queued or running tasks in created order (a user who sees only their
        -- own tasks, filtering on the active statuses): along tasks_by_owner such a page
        -- walked the owner's whole history (56 ms for 67,000 tasks), along tasks_by_status
        -- every user's settled backlog (16 ms beside 50,000 queued jobs); 1 ms here
        CREATE INDEX tasks_by_owner_status ON tasks(owner, status, id) WHERE fresh IS NULL;
        """,
    ),
    (
        16,
        """
        -- how many jobs of each queue a worker runs at once ({"queue": slots}): a queue's
        -- capacity is then the sum over its live workers, whichever processes they are
        -- (the server knew only its own, the dashboard on the file none)
        ALTER TABLE workers ADD COLUMN slots TEXT;
        """,
    ),
    (
        17,
        """
        -- the search index's pieces are lowered in every script now (task_sql.search_grams),
        -- so "über" finds "Über Report"; those of SQLite's lower(), ASCII only, would not
        -- match, nor could they be told again to forget them. The index starts over empty
        -- and the store's upkeep fills it in batches, as after a large prune (searches
        -- read the tasks not indexed yet directly meanwhile); an index a prune set aside
        -- goes now
        DROP TABLE IF EXISTS task_search_dropped;
        DROP TABLE task_search;
        CREATE VIRTUAL TABLE task_search USING fts5(
            grams, content='', detail=none, columnsize=0, tokenize='ascii');
        INSERT INTO task_search (task_search, rank) VALUES ('automerge', 0);
        INSERT INTO task_search (task_search, rank) VALUES ('crisismerge', 64);
        DELETE FROM task_search_queue;
        DELETE FROM task_disorder;
        UPDATE task_search_mark SET indexed_to = 0, pending_max = 0, max_id = '';
        """,
    ),
    (
        18,
        """
        -- the names of the registered tasks a worker claims (a JSON list): a job naming a
        -- task that no live worker has waits for one, and the CLI and doctor can say so
        -- (a typo'd name sat queued for good, unseen); NULL in a row of an older worker
        ALTER TABLE workers ADD COLUMN tasks TEXT;
        """,
    ),
    (
        19,
        """
        -- the queued work sent to one worker (a cell's rerun goes to its kernel): a
        -- reaper ends it when that worker is found dead, and finds it without reading
        -- the history (a queued job has no worker; this index is nearly always empty)
        CREATE INDEX tasks_waiting_for_worker ON tasks(worker_id)
            WHERE status = 'queued' AND worker_id IS NOT NULL;
        """,
    ),
    (
        20,
        """
        -- the callbacks owed: a row per ended task with a callback_url, written in the
        -- end's own transaction by a trigger (every path that ends a task, in any
        -- process, writes one), deleted once delivered, refused or out of tries. The
        -- POST's tries lived in the memory of the process that wrote the end: one
        -- killed or stopped before it delivered owed the callback for good. ``tries``
        -- counts the failed tries of every process; ``claimed_by`` (a worker id) is
        -- the process posting it until ``claimed_until``
        CREATE TABLE callback_outbox (
            task_id TEXT PRIMARY KEY,
            tries INTEGER NOT NULL DEFAULT 0,
            claimed_by TEXT,
            claimed_until REAL
        );
        CREATE TRIGGER callback_owed AFTER UPDATE OF status ON tasks
            WHEN new.callback_url IS NOT NULL
             AND new.status NOT IN ('queued', 'running')
             AND old.status IN ('queued', 'running')
        BEGIN
            INSERT OR REPLACE INTO callback_outbox (task_id) VALUES (new.id);
        END;
        """,
    ),
]

LATEST_VERSION = MIGRATIONS[-1][0]
