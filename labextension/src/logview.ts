/**
 * A main-area widget that tails one task's log.
 */
import { Widget } from '@lumino/widgets';

import { TasksConnection } from './connection';
import { ILogEntry, ITaskEvent, isActive } from './types';

/** Entries per request; a full page means more may be waiting. */
const LOG_PAGE = 1000;
const POLL_MS = 1000;
/** Escape sequences (colours, cursor moves) that a <pre> would show raw. */
const ANSI = /\x1b\[[0-9;?]*[A-Za-z]/g;

export function stripAnsi(text: string): string {
  return text.replace(ANSI, '');
}

/**
 * New lines are fetched when a `task.log` event for the task arrives, and by a
 * one-second poll while the task is active and the event stream is down.
 */
export class TaskLogView extends Widget {
  constructor(options: TaskLogView.IOptions) {
    super();
    this._connection = options.connection;
    this.taskId = options.taskId;
    this.addClass('jp-TasksLog');
    this.node.dataset.taskId = this.taskId;
    this.node.tabIndex = 0;
    this._output = document.createElement('pre');
    this._output.className = 'jp-TasksLog-output';
    this._message = document.createElement('div');
    this._message.className = 'jp-TasksLog-message';
    this.node.append(this._output, this._message);
    this._connection.eventsApplied.connect(this._onEvent, this);
    this._timer = setInterval(() => this._poll(), POLL_MS);
    void this._fetch();
  }

  readonly taskId: string;

  dispose(): void {
    if (this.isDisposed) {
      return;
    }
    clearInterval(this._timer);
    super.dispose();
  }

  private _onEvent(_: TasksConnection, event: ITaskEvent): void {
    if (event.task_id !== this.taskId) {
      return;
    }
    if (event.type === 'task.deleted') {
      this._stop('The task was deleted.');
    } else if (event.type === 'task.log' || (event.task && !isActive(event.task))) {
      // A terminal event may follow the last lines closely: read once more.
      void this._fetch();
    }
  }

  private _poll(): void {
    const task = this._connection.model.get(this.taskId);
    if (!task) {
      // Not loaded yet (a tab restored at start-up); events still drive fetches.
      return;
    }
    if (!isActive(task)) {
      // Nothing more will be written; the fetch that saw the end is enough.
      clearInterval(this._timer);
      void this._fetch();
    } else if (this._connection.stream.status !== 'open') {
      void this._fetch();
    }
  }

  /** Reads until caught up; concurrent calls fold into one more round. */
  private async _fetch(): Promise<void> {
    if (this._fetching) {
      this._again = true;
      return;
    }
    this._fetching = true;
    try {
      do {
        this._again = false;
        let count: number;
        do {
          const page = await this._connection.api.logs(this.taskId, this._after, LOG_PAGE);
          if (this.isDisposed) {
            return;
          }
          count = page.entries.length;
          this._append(page.entries);
          const last = page.entries[count - 1];
          this._after = typeof page.next === 'number' ? page.next : last ? last.seq : this._after;
        } while (count >= LOG_PAGE);
      } while (this._again);
      this._message.textContent = this._emptyText();
    } catch (error) {
      if (!this.isDisposed) {
        this._message.textContent = `Could not read the log: ${(error as Error).message}`;
      }
    } finally {
      this._fetching = false;
    }
  }

  /** What an empty log says instead of a blank page. */
  private _emptyText(): string {
    if (this._output.childElementCount > 0) {
      return '';
    }
    const task = this._connection.model.get(this.taskId);
    if (!task) {
      return 'No output yet.';
    }
    return isActive(task)
      ? `No output yet: the task is ${task.status}. Lines appear here as it prints them.`
      : `This task wrote no output (it ended ${task.status}).`;
  }

  private _append(entries: ILogEntry[]): void {
    if (entries.length === 0) {
      return;
    }
    const node = this.node;
    // Follow the tail only if the reader has not scrolled up to read.
    const following = node.scrollHeight - node.scrollTop - node.clientHeight < 24;
    const fragment = document.createDocumentFragment();
    for (const entry of entries) {
      const span = document.createElement('span');
      span.className = `jp-TasksLog-entry jp-TasksLog-${entry.stream}`;
      span.textContent = stripAnsi(entry.text);
      fragment.appendChild(span);
    }
    this._output.appendChild(fragment);
    if (following) {
      node.scrollTop = node.scrollHeight;
    }
  }

  private _stop(message: string): void {
    clearInterval(this._timer);
    this._message.textContent = message;
  }

  private _connection: TasksConnection;
  private _output: HTMLPreElement;
  private _message: HTMLDivElement;
  private _after = 0;
  private _fetching = false;
  private _again = false;
  private _timer: ReturnType<typeof setInterval>;
}

export namespace TaskLogView {
  export interface IOptions {
    connection: TasksConnection;
    taskId: string;
  }
}
