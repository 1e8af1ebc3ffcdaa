/**
 * The user's schedules as the panel shows them: REST snapshots and
 * `schedule.changed` events merged into one map. No DOM and no network here.
 */
import { ISignal, Signal } from '@lumino/signaling';

import { ISchedule, ITaskEvent } from './types';

export class SchedulesModel {
  /** Emitted after each change (a snapshot, an event, an action's answer). */
  get changed(): ISignal<this, void> {
    return this._changed;
  }

  get size(): number {
    return this._schedules.size;
  }

  get(id: string): ISchedule | undefined {
    return this._schedules.get(id);
  }

  /** Every schedule, newest first (as `GET /api/tasks/schedules` orders them). */
  get all(): readonly ISchedule[] {
    if (this._all === null) {
      this._all = Array.from(this._schedules.values()).sort((a, b) =>
        a.created_at < b.created_at
          ? 1
          : a.created_at > b.created_at
            ? -1
            : b.id.localeCompare(a.id)
      );
    }
    return this._all;
  }

  /**
   * Merge a `schedule.changed` event: the schedule as it is now, or its
   * deletion (`schedule: null`).
   */
  applyEvent(event: ITaskEvent): void {
    const id = event.schedule_id ?? event.schedule?.id;
    if (!id) {
      return;
    }
    if (event.schedule) {
      this.put(event.schedule);
    } else {
      this.remove(id);
    }
  }

  /**
   * Merge a list read over REST. A schedule changed or deleted by an event
   * since the request left keeps the event's state: snapshots never move a
   * schedule back to an older `updated_at`, nor revive a deleted one.
   */
  applySnapshot(schedules: readonly ISchedule[], complete = true): void {
    const seen = new Set<string>();
    for (const schedule of schedules) {
      seen.add(schedule.id);
      if (!this._deleted.has(schedule.id)) {
        this._merge(schedule);
      }
    }
    if (complete) {
      for (const id of Array.from(this._schedules.keys())) {
        if (!seen.has(id)) {
          this._schedules.delete(id);
        }
      }
    }
    this._loaded = true;
    this._emit();
  }

  /** Whether a first list was read. */
  get loaded(): boolean {
    return this._loaded;
  }

  /** Put one schedule (an event's or an action's answer), unless an older copy. */
  put(schedule: ISchedule): void {
    this._deleted.delete(schedule.id);
    this._merge(schedule);
    this._emit();
  }

  /**
   * A task's new status, from its own event: the schedules whose last run it is show
   * it. No `schedule.changed` comes when a fired task ends, and the line said "queued",
   * the status at the firing, until the next reload.
   */
  noteTask(taskId: string, status: string): void {
    let changed = false;
    for (const schedule of this._schedules.values()) {
      if (schedule.last_task_id === taskId && schedule.last_status !== status) {
        this._schedules.set(schedule.id, { ...schedule, last_status: status });
        changed = true;
      }
    }
    if (changed) {
      this._emit();
    }
  }

  remove(id: string): void {
    this._deleted.add(id);
    if (this._schedules.delete(id)) {
      this._emit();
    }
  }

  private _merge(schedule: ISchedule): void {
    const known = this._schedules.get(schedule.id);
    if (known && known.updated_at > schedule.updated_at) {
      return;
    }
    this._schedules.set(schedule.id, schedule);
  }

  private _emit(): void {
    this._all = null;
    this._changed.emit();
  }

  private _schedules = new Map<string, ISchedule>();
  private _deleted = new Set<string>();
  private _all: ISchedule[] | null = null;
  private _loaded = false;
  private _changed = new Signal<this, void>(this);
}
