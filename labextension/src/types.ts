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
  timeout?: number | null;
  parent_id?: string | null;
  relationship?: string | null;
  cancel_requested?: boolean | null;
  confirmation: ITaskConfirmation | null;
  created_at: string | null;
  started_at: string | null;
  finished_at: string | null;
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

/** `GET /api/tasks/me`. */
export interface IMe {
  owner: string;
  root_dir: string;
  sees_others: boolean;
}
