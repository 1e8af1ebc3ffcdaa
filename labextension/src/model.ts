/**
 * The task list as the panel sees it: snapshots from REST pages and websocket
 * events merged into one map, plus the filters. No DOM and no network here, so
 * the merge rules can be unit tested.
 */
import { ISignal, Signal } from '@lumino/signaling';

import {
  ACTIVE_STATUSES,
  ALL_STATUSES,
  ITask,
  ITaskConfirmation,
  ITaskEvent,
  isActive
} from './types';

/** Runs a callback later; the model coalesces change notifications with it. */
export type Scheduler = (callback: () => void) => void;

export interface ITaskFilter {
  /** Statuses to show; empty means every status. */
  statuses: ReadonlySet<string>;
  /** Only tasks whose origin notebook is the current notebook. */
  thisNotebook: boolean;
  /** Only tasks of this owner; null means everybody. */
  owner: string | null;
  /** Case-insensitive substring of label, name or id. */
  search: string;
  /** Only tasks waiting for my answer (a pending confirmation). */
  needsMe: boolean;
  /** Only the firings of this schedule; null means any task. */
  scheduleId: string | null;
}

export const DEFAULT_FILTER: ITaskFilter = {
  statuses: new Set<string>(),
  thisNotebook: false,
  owner: null,
  search: '',
  needsMe: false,
  scheduleId: null
};

/** Who the server takes this client for (`GET /api/tasks/me`). */
export interface IIdentity {
  /** The name the server stores as `owner` of this user's tasks. */
  owner: string;
  /** The server root, absolute: kernels record absolute notebook paths under it. */
  rootDir: string;
  /** Whether the server shows this user other users' tasks. */
  seesOthers: boolean;
}

/** The panel's sections, each in display order. */
export interface ISections {
  /** Tasks of mine waiting for an answer, oldest question first. */
  needs: ITask[];
  running: ITask[];
  /** In the order workers take them: priority, then age. */
  queued: ITask[];
  /** Finished tasks, the most recently ended first. */
  recent: ITask[];
}

/** Where a queued task stands in its queue (1 = next). */
export interface IQueuePosition {
  queue: string;
  position: number;
  of: number;
}

/** A question the task waits on, or null. */
export function pendingQuestion(task: ITask): ITaskConfirmation | null {
  const question = task.confirmation;
  return question && question.answer == null && isActive(task) ? question : null;
}

/**
 * The path of a task's notebook relative to the server root, the form JupyterLab
 * uses; null when the task came from no notebook. Kernels record an absolute path
 * (`JPY_SESSION_NAME`); one outside the root is only normalised.
 */
export function relativeNotebookPath(task: ITask, rootDir: string | null): string | null {
  const notebook = task.origin?.notebook;
  if (!notebook) {
    return null;
  }
  if (rootDir) {
    const root = rootDir.replace(/\/+$/, '');
    if (root === '') {
      return normalizePath(notebook);
    }
    if (notebook.startsWith(root + '/')) {
      return normalizePath(notebook.slice(root.length + 1));
    }
  }
  return normalizePath(notebook);
}

/** Paths from the kernel and from JupyterLab may differ by a leading `/` or `./`. */
export function normalizePath(path: string): string {
  return path.replace(/^(\.\/|\/)+/, '');
}

function sameCounts(a: Map<string, number> | null, b: Map<string, number> | null): boolean {
  if (a === null || b === null) {
    return a === b;
  }
  return a.size === b.size && Array.from(a).every(([key, n]) => b.get(key) === n);
}

function animationFrame(callback: () => void): void {
  if (typeof requestAnimationFrame === 'function') {
    requestAnimationFrame(() => callback());
  } else {
    setTimeout(callback, 16);
  }
}

export class TasksModel {
  constructor(options: TasksModel.IOptions = {}) {
    this._schedule = options.schedule ?? animationFrame;
  }

  /**
   * Emitted at most once per scheduler tick (an animation frame in the
   * browser) however many events or filter changes arrived in between.
   */
  get changed(): ISignal<this, void> {
    return this._changed;
  }

  /** The highest event id applied; a reconnecting stream resumes after it. */
  get lastEventId(): number | null {
    return this._lastEventId;
  }

  get size(): number {
    return this._tasks.size;
  }

  get(id: string): ITask | undefined {
    return this._tasks.get(id);
  }

  /** How many known tasks have this status; O(1). */
  count(status: string): number {
    return this._statusCounts.get(status) ?? 0;
  }

  /**
   * How many tasks have this status on the server: its counts when the model
   * holds only the newest pages (`setTotals`), else the known tasks' count.
   */
  total(status: string): number {
    return this._totals ? (this._totals.get(status) ?? 0) : this.count(status);
  }

  /** How many tasks there are on the server (see `total`). */
  get totalSize(): number {
    if (!this._totals) {
      return this.size;
    }
    let sum = 0;
    this._totals.forEach(n => (sum += n));
    return sum;
  }

  /**
   * The server's counts by status (`GET /api/tasks/stats`), for a model that
   * holds only the newest pages of a longer history; null when it holds every
   * task, whose own counts are then exact and move with each event at once.
   */
  setTotals(
    totals: Record<string, number> | null,
    queuedByQueue: Record<string, number> = {}
  ): void {
    const next = totals ? new Map(Object.entries(totals)) : null;
    const queued = totals ? new Map(Object.entries(queuedByQueue)) : null;
    if (!sameCounts(next, this._totals) || !sameCounts(queued, this._queuedTotals)) {
      this._totals = next;
      this._queuedTotals = queued;
      this._positions = null;
      this._scheduleChanged();
    }
  }

  get filter(): ITaskFilter {
    return this._filter;
  }

  setFilter(change: Partial<ITaskFilter>): void {
    this._filter = { ...this._filter, ...change };
    this._visible = null;
    this._sections = null;
    this._scheduleChanged();
  }

  /** Path of the notebook the user works in, for the "this notebook" filter. */
  get currentNotebook(): string | null {
    return this._currentNotebook;
  }

  set currentNotebook(path: string | null) {
    const normalized = path === null ? null : normalizePath(path);
    if (normalized === this._currentNotebook) {
      return;
    }
    this._currentNotebook = normalized;
    if (this._filter.thisNotebook) {
      this._visible = null;
      this._sections = null;
      this._scheduleChanged();
    }
  }

  /** Who "me" is, from the server; null until it answered. */
  get identity(): IIdentity | null {
    return this._identity;
  }

  set identity(identity: IIdentity | null) {
    this._identity = identity;
    this._invalidateViews();
    this._scheduleChanged();
  }

  /** The task's notebook relative to the server root (see `relativeNotebookPath`). */
  notebookPath(task: ITask): string | null {
    return relativeNotebookPath(task, this._identity?.rootDir ?? null);
  }

  /** Whether the task waits for an answer from me. */
  needsMe(task: ITask): boolean {
    return (
      this._identity !== null && task.owner === this._identity.owner && !!pendingQuestion(task)
    );
  }

  /** My tasks waiting for an answer, oldest question first, whatever the filter. */
  get waitingForMe(): readonly ITask[] {
    if (this._waiting === null) {
      this._waiting = Array.from(this._pending)
        .map(id => this._tasks.get(id)!)
        .filter(task => this.needsMe(task))
        .sort(byQuestionTime);
    }
    return this._waiting;
  }

  /**
   * How many tasks of a section the server holds, when the model holds only part
   * of them (it loaded the newest pages) and the filter picks by status alone;
   * null otherwise, when the section's own rows are the whole count.
   */
  sectionTotal(name: keyof ISections): number | null {
    const filter = this._filter;
    if (
      !this._totals ||
      name === 'needs' ||
      filter.search ||
      filter.owner !== null ||
      filter.thisNotebook ||
      filter.needsMe ||
      filter.scheduleId !== null
    ) {
      return null;
    }
    const statuses = new Set<string>(
      ALL_STATUSES.filter(
        status =>
          (name === 'recent' ? !ACTIVE_STATUSES.has(status) : status === name) &&
          (filter.statuses.size === 0 || filter.statuses.has(status))
      )
    );
    // the tasks waiting for my answer are listed apart, under "needs"
    const apart = this.sections.needs.filter(task => statuses.has(task.status)).length;
    let total = -apart;
    statuses.forEach(status => (total += this.total(status)));
    return total > this.sections[name].length ? total : null;
  }

  /** The visible tasks split into the panel's sections; computed once per change. */
  get sections(): ISections {
    if (this._sections === null) {
      const sections: ISections = { needs: [], running: [], queued: [], recent: [] };
      for (const task of this.visible) {
        if (this.needsMe(task)) {
          sections.needs.push(task);
        } else if (task.status === 'running') {
          sections.running.push(task);
        } else if (task.status === 'queued') {
          sections.queued.push(task);
        } else {
          sections.recent.push(task);
        }
      }
      sections.needs.sort(byQuestionTime);
      sections.queued.sort(byQueueOrder);
      sections.recent.sort(byEndTime);
      this._sections = sections;
    }
    return this._sections;
  }

  /**
   * Position of a queued task among the queued tasks of its queue; null when
   * the model does not hold them all (only the newest pages are loaded).
   */
  queuePosition(task: ITask): IQueuePosition | null {
    if (task.status !== 'queued') {
      return null;
    }
    if (this._positions === null) {
      const queues = new Map<string, ITask[]>();
      for (const id of this._queued) {
        const queued = this._tasks.get(id)!;
        const name = queued.queue ?? 'default';
        let list = queues.get(name);
        if (!list) {
          list = [];
          queues.set(name, list);
        }
        list.push(queued);
      }
      this._positions = new Map();
      for (const [queue, list] of queues) {
        if (this._queuedTotals && (this._queuedTotals.get(queue) ?? 0) !== list.length) {
          continue; // others wait in this queue too, maybe ahead of these
        }
        list.sort(byQueueOrder);
        list.forEach((queued, index) =>
          this._positions!.set(queued.id, { queue, position: index + 1, of: list.length })
        );
      }
    }
    return this._positions.get(task.id) ?? null;
  }

  /** Every known task, newest first. */
  get all(): readonly ITask[] {
    if (this._order === null) {
      // Ids are time-ordered fixed-width hex, so string order is age order.
      this._order = Array.from(this._tasks.keys()).sort((a, b) => (a < b ? 1 : a > b ? -1 : 0));
    }
    if (this._all === null) {
      this._all = this._order.map(id => this._tasks.get(id)!);
    }
    return this._all;
  }

  /** The tasks that pass the filter, newest first; computed once per change. */
  get visible(): readonly ITask[] {
    if (this._visible === null) {
      this._visible = this.all.filter(task => this._matches(task));
    }
    return this._visible;
  }

  /** Distinct owners of known tasks, sorted, for the owner filter. */
  get owners(): readonly string[] {
    if (this._owners === null) {
      const owners = new Set<string>();
      for (const task of this._tasks.values()) {
        if (task.owner) {
          owners.add(task.owner);
        }
      }
      this._owners = Array.from(owners).sort();
    }
    return this._owners;
  }

  /**
   * Apply websocket events in order. Events with an id not above the last
   * applied one are dropped, so replaying an overlap after a reconnect neither
   * duplicates nor reorders anything. O(1) per event; the sorted view is
   * rebuilt lazily on the next read.
   *
   * @returns the events that were applied (for notifications and log tails).
   */
  applyEvents(events: Iterable<ITaskEvent>): ITaskEvent[] {
    const applied: ITaskEvent[] = [];
    for (const event of events) {
      if (this._lastEventId !== null && event.id <= this._lastEventId) {
        continue;
      }
      this._lastEventId = event.id;
      if (event.task_id) {
        // schedule events name no task
        this._touchedAt.set(event.task_id, event.id);
      }
      if (event.type === 'task.deleted') {
        this._remove(event.task_id);
      } else if (event.task) {
        // Every other type, known or not, carries the task as it is now.
        this._put(event.task);
      }
      applied.push(event);
    }
    if (applied.length > 0) {
      this._scheduleChanged();
    }
    return applied;
  }

  /**
   * Forget every task and resume after event `lastEventId`: the server said the
   * ids the model knew are of another history (its database was replaced).
   */
  reset(lastEventId: number): void {
    this._tasks.clear();
    this._touchedAt.clear();
    this._statusCounts.clear();
    this._queued.clear();
    this._pending.clear();
    this._totals = null;
    this._queuedTotals = null;
    this._positions = null;
    this._order = null;
    this._invalidateViews();
    this._lastEventId = lastEventId;
    this._scheduleChanged();
  }

  /**
   * Merge tasks read over REST.
   *
   * @param asOf - `lastEventId` when the request was sent. The server read the
   *   tasks after that moment, so the snapshot is at least as new as anything
   *   applied up to `asOf`; but an event applied since may be newer than the
   *   snapshot (or a deletion), and then the event wins. Any change between
   *   that event and the read comes as a later event, so the map converges.
   */
  applySnapshots(tasks: Iterable<ITask>, asOf: number | null): void {
    let changed = false;
    for (const task of tasks) {
      const touched = this._touchedAt.get(task.id);
      if (touched !== undefined && (asOf === null || touched > asOf)) {
        continue;
      }
      this._put(task);
      changed = true;
    }
    if (changed) {
      this._scheduleChanged();
    }
  }

  get isDisposed(): boolean {
    return this._isDisposed;
  }

  dispose(): void {
    this._isDisposed = true;
    Signal.clearData(this);
  }

  private _put(task: ITask): void {
    const previous = this._tasks.get(task.id);
    if (previous) {
      this._countStatus(previous.status, -1);
    } else {
      this._order = null;
    }
    this._countStatus(task.status, 1);
    this._tasks.set(task.id, task);
    this._track(task.id, task);
    this._invalidateViews();
  }

  /** Keep the small sets of queued and questioning tasks current. */
  private _track(id: string, task: ITask | null): void {
    // a queued task's priority or queue may change too: recomputing is cheap
    if (this._queued.has(id) || task?.status === 'queued') {
      this._positions = null;
    }
    if (task?.status === 'queued') {
      this._queued.add(id);
    } else {
      this._queued.delete(id);
    }
    if (task && pendingQuestion(task)) {
      this._pending.add(id);
    } else {
      this._pending.delete(id);
    }
  }

  private _remove(id: string): void {
    const previous = this._tasks.get(id);
    if (!previous) {
      return;
    }
    this._countStatus(previous.status, -1);
    this._tasks.delete(id);
    this._track(id, null);
    this._order = null;
    this._invalidateViews();
  }

  private _invalidateViews(): void {
    this._all = null;
    this._visible = null;
    this._owners = null;
    this._sections = null;
    this._waiting = null;
  }

  private _countStatus(status: string, delta: number): void {
    this._statusCounts.set(status, (this._statusCounts.get(status) ?? 0) + delta);
  }

  private _matches(task: ITask): boolean {
    const filter = this._filter;
    if (filter.statuses.size > 0 && !filter.statuses.has(task.status)) {
      return false;
    }
    if (filter.owner !== null && task.owner !== filter.owner) {
      return false;
    }
    if (filter.needsMe && !this.needsMe(task)) {
      return false;
    }
    if (filter.scheduleId !== null && task.schedule_id !== filter.scheduleId) {
      return false;
    }
    if (filter.thisNotebook) {
      if (this._currentNotebook === null || this.notebookPath(task) !== this._currentNotebook) {
        return false;
      }
    }
    const search = filter.search.trim().toLowerCase();
    if (search) {
      const haystack = [task.label, task.name, task.id];
      if (!haystack.some(text => text?.toLowerCase().includes(search))) {
        return false;
      }
    }
    return true;
  }

  private _scheduleChanged(): void {
    if (this._changePending || this._isDisposed) {
      return;
    }
    this._changePending = true;
    this._schedule(() => {
      this._changePending = false;
      if (!this._isDisposed) {
        this._changed.emit();
      }
    });
  }

  private _tasks = new Map<string, ITask>();
  /** Id of the last event about each task id, deleted tasks included. */
  private _touchedAt = new Map<string, number>();
  private _statusCounts = new Map<string, number>();
  private _totals: Map<string, number> | null = null;
  private _queuedTotals: Map<string, number> | null = null;
  private _lastEventId: number | null = null;
  private _filter: ITaskFilter = DEFAULT_FILTER;
  private _currentNotebook: string | null = null;
  /** Ids newest first; only membership changes invalidate it, ids never move. */
  private _order: string[] | null = null;
  private _all: ITask[] | null = null;
  private _visible: ITask[] | null = null;
  private _owners: string[] | null = null;
  private _sections: ISections | null = null;
  private _waiting: ITask[] | null = null;
  private _positions: Map<string, IQueuePosition> | null = null;
  /** Ids of queued tasks and of tasks with a pending question: few, kept as sets. */
  private _queued = new Set<string>();
  private _pending = new Set<string>();
  private _identity: IIdentity | null = null;
  private _schedule: Scheduler;
  private _changePending = false;
  private _changed = new Signal<this, void>(this);
  private _isDisposed = false;
}

function byQuestionTime(a: ITask, b: ITask): number {
  return compare(a.confirmation?.asked_at ?? a.id, b.confirmation?.asked_at ?? b.id);
}

/** The order a worker claims jobs in: higher priority first, then the oldest. */
function byQueueOrder(a: ITask, b: ITask): number {
  return (b.priority ?? 0) - (a.priority ?? 0) || compare(a.id, b.id);
}

/** The most recently ended first; ISO times of one server compare as strings. */
function byEndTime(a: ITask, b: ITask): number {
  return (
    compare(b.finished_at ?? b.created_at ?? '', a.finished_at ?? a.created_at ?? '') ||
    compare(b.id, a.id)
  );
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

export namespace TasksModel {
  export interface IOptions {
    /** Defaults to `requestAnimationFrame`. Tests pass a manual scheduler. */
    schedule?: Scheduler;
  }
}
