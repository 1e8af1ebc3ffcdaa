/**
 * Shapes of the jupyter-tasks REST and websocket payloads (see docs/reference/rest-api.md).
 *
 * Only the fields the panel reads are typed precisely; the rest stay `unknown`
 * so that a server adding fields never breaks the build.
 */

export type TaskStatus =
  'queued' | 'running' | 'succeeded' | 'failed' | 'timeout' | 'oom' | 'cancelled' | 'interrupted';

export const ALL_STATUSES: readonly TaskStatus[] = [
  'queued',
  'running',
  'succeeded',
  'failed',
  'timeout',
  'oom',
  'cancelled',
  'interrupted'
];

export const ACTIVE_STATUSES: ReadonlySet<string> = new Set(['queued', 'running']);

export function isActive(task: ITask): boolean {
  return ACTIVE_STATUSES.has(task.status);
}

export interface ITaskProgress {
  current: number | null;
  total: number | null;
  message?: string | null;
}

export interface ITaskError {
  type: string;
  message: string;
  /** A formatted string; some runners send a list of lines instead. */
  traceback?: string | string[] | null;
}

export interface ITaskOrigin {
  type: string;
  kernel_id?: string;
  notebook?: string | null;
  [key: string]: unknown;
}

export interface ITaskConfirmation {
  prompt: string;
  choices: string[] | null;
  answer: string | null;
  asked_at?: string | null;
}

export interface ITask {
  /** 32 lowercase hex digits, time ordered: newer ids compare greater. */
  id: string;
  kind: string;
  mode?: string | null;
  name: string | null;
  label: string | null;
  /** A `TaskStatus`, typed as string because servers may add statuses. */
  status: string;
  params?: unknown;
  result?: unknown;
  error: ITaskError | null;
  progress: ITaskProgress | null;
  task_key?: string | null;
  idempotency_key?: string | null;
  queue?: string | null;
  priority?: number | null;
  owner: string | null;
  origin: ITaskOrigin | null;
  attempts?: number | null;
  max_retries?: number | null;
  /** How many attempts the retry policy allows in all (worker losses included). */
  max_attempts?: number | null;
  /** Attempts that ended because the worker running them was lost. */
  lost_attempts?: number | null;
  /** Why the last attempt was retried ("worker lost", or the error). */
  retry_reason?: string | null;
  /** The schedule that fired this task, kept after the schedule is deleted. */
  schedule_id?: string | null;
  timeout?: number | null;
  parent_id?: string | null;
  relationship?: string | null;
  cancel_requested?: boolean | null;
  confirmation: ITaskConfirmation | null;
  created_at: string | null;
  started_at: string | null;
  finished_at: string | null;
}

/** The answer to a submit, a rerun or a schedule's run now: a task, and whether it is new. */
export interface ITaskAnswer extends ITask {
  /** True when it is the run the task's key already had queued or running, not new work. */
  deduplicated?: boolean;
}

/**
 * One websocket message. `id` is the server's event sequence number (an
 * integer that only grows), used to resume with `?since=`.
 */
export interface ITaskEvent {
  id: number;
  type: string;
  task_id: string;
  ts: string;
  /** The task as it was right after the event; null only if the server had none. */
  task: ITask | null;
  /** `schedule.changed` events: the schedule's id (their `task_id` is null). */
  schedule_id?: string | null;
  /** `schedule.changed` events: the schedule now, null once deleted. */
  schedule?: ISchedule | null;
}

export interface ITaskPage {
  tasks: ITask[];
  next_cursor: string | null;
}

export interface ILogEntry {
  seq: number;
  ts: string;
  stream: string;
  text: string;
}

export interface ILogPage {
  entries: ILogEntry[];
  next: number;
}

export interface IArtifact {
  name: string;
  size: number;
  sha256: string;
  content_type: string;
}

/** `GET /api/tasks/stats`: the caller's tasks counted by status and by queue. */
export interface IStats {
  statuses: Record<string, number>;
  queues: Record<string, { queued: number; running: number; max_workers: number }>;
}

/** `GET /api/tasks/me`. */
export interface IMe {
  owner: string;
  root_dir: string;
  sees_others: boolean;
}

/** The job a schedule fires: exactly the body `POST /api/tasks` accepts. */
export interface IJobBody {
  notebook?: string;
  name?: string;
  command?: unknown;
  code?: string;
  parameters?: Record<string, unknown>;
  queue?: string;
  timeout?: number;
  [key: string]: unknown;
}

/** `GET /api/tasks/schedules/{id}`. */
export interface ISchedule {
  id: string;
  name: string;
  owner: string;
  cron: string;
  timezone: string;
  /** What missed firings do: `once` or `skip`. */
  catch_up: string;
  paused: boolean;
  job: IJobBody;
  /** Null while paused. */
  next_run_at: string | null;
  next_runs: string[];
  last_run_at: string | null;
  last_task_id: string | null;
  last_status: string | null;
  created_at: string;
  updated_at: string;
}

/** One name of a notebook's `parameters` cell (`GET /api/tasks/notebook-parameters`). */
export interface INotebookParameter {
  name: string;
  default: unknown;
  /** The right-hand side as written. */
  source: string;
  type: string;
}

export interface INotebookParameters {
  path: string;
  has_parameters_cell: boolean;
  parameters: INotebookParameter[];
}

/** One field error of a problem+json answer. */
export interface IFieldError {
  field: string;
  message: string;
}
