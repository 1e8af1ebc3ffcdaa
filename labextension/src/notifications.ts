/**
 * Notifications about my own tasks (the owner the server stores for me, see
 * `GET /api/tasks/me`): a quiet toast when one succeeds, a sticky one with
 * "Open log" when one fails or times out, and a sticky question when one waits
 * for my answer, withdrawn as soon as the question is answered from anywhere.
 *
 * Many ends at once (a sweep of 1,000 jobs) are not 1,000 toasts: a success
 * that comes while the last success toast is still up joins it ("and 41 more"),
 * and past a few failures in a short while the next ones join one grouped
 * toast. Each toast is DOM that JupyterLab keeps (and lays out) until it closes,
 * which headless or unfocused pages never do by themselves.
 */
import { Notification } from '@jupyterlab/apputils';

import { shortId } from './format';
import { TasksModel, pendingQuestion } from './model';
import { ITask, ITaskEvent, isActive } from './types';

/** Terminal events worth a notification; a cancellation was asked for, so it is not. */
const FINISHED: Record<string, 'success' | 'error'> = {
  'task.succeeded': 'success',
  'task.failed': 'error',
  'task.timeout': 'error',
  'task.oom': 'error',
  'task.interrupted': 'error'
};

/** How long the success toast stays; failures and questions stay until dismissed. */
export const SUCCESS_MS = 4000;

/** Failures shown each in their own toast within `ERROR_WINDOW_MS`; later ones are grouped. */
export const ERROR_BURST = 3;
export const ERROR_WINDOW_MS = 5000;

export function taskName(task: ITask): string {
  return task.label || task.name || task.kind || shortId(task.id);
}

export class TaskNotifier {
  constructor(options: TaskNotifier.IOptions) {
    this._model = options.model;
    this._options = options;
  }

  /**
   * Call with each applied event, in order, and the task as it was before. An
   * end is announced only for a task seen active before (not for history that
   * arrives already finished, e.g. imported or replayed rows).
   */
  onEvent(event: ITaskEvent, previous: ITask | null): void {
    const task = event.task;
    if (!task) {
      if (event.type === 'task.deleted') {
        this._withdraw(event.task_id);
      }
      return;
    }
    const me = this._model.identity?.owner;
    if (me === undefined || task.owner !== me) {
      return;
    }
    this._question(task);
    const kind = FINISHED[event.type];
    if (!kind || isActive(task) || previous === null || !isActive(previous)) {
      return;
    }
    const name = taskName(task);
    const now = Date.now();
    if (kind === 'success') {
      this._succeeded(task, name, now);
      return;
    }
    const what = task.status === 'timeout' ? 'timed out' : task.status;
    const detail = task.error?.message ? `: ${task.error.message}` : '.';
    const message = `Task "${name}" ${what}${detail}`;
    const actions: Notification.IAction[] = [
      { label: 'Open log', callback: () => this._options.openLog(task.id) },
      {
        label: 'Show',
        displayType: 'link',
        callback: () => this._options.showTask(task.id)
      }
    ];
    this._errors = this._errors.filter(at => now - at < ERROR_WINDOW_MS);
    if (this._errors.length < ERROR_BURST) {
      this._errors.push(now);
      Notification.error(message, { autoClose: false, actions });
      return;
    }
    // a burst: one sticky toast counts the rest and names the latest
    const group = this._errorGroup;
    const count = (group?.count ?? 0) + 1;
    const text = `${count} more tasks ended badly; latest: ${message}`;
    if (group && Notification.update({ id: group.id, message: text, type: 'error', actions })) {
      group.count = count;
      return;
    }
    const id = Notification.error(`1 more task ended badly: ${message}`, {
      autoClose: false,
      actions
    });
    this._errorGroup = { id, count: 1 };
  }

  /** A quiet toast; one still up takes the news instead of a second toast. */
  private _succeeded(task: ITask, name: string, now: number): void {
    const actions: Notification.IAction[] = [
      { label: 'Show', callback: () => this._options.showTask(task.id) }
    ];
    const group = this._success;
    if (group && now - group.at < SUCCESS_MS) {
      const count = group.count + 1;
      const updated = Notification.update({
        id: group.id,
        message: `Task "${name}" succeeded (and ${count - 1} more).`,
        type: 'success',
        autoClose: SUCCESS_MS,
        actions
      });
      if (updated) {
        this._success = { id: group.id, count, at: now };
        return;
      }
    }
    const id = Notification.success(`Task "${name}" succeeded.`, {
      autoClose: SUCCESS_MS,
      actions
    });
    this._success = { id, count: 1, at: now };
  }

  /** Announce a new pending question once; withdraw it once it is gone. */
  private _question(task: ITask): void {
    const question = pendingQuestion(task);
    const key = question ? `${question.asked_at ?? ''}\n${question.prompt}` : null;
    const shown = this._questions.get(task.id);
    if (shown && shown.key === key) {
      return;
    }
    this._withdraw(task.id);
    if (question && key !== null) {
      const id = Notification.warning(`Task "${taskName(task)}" needs you: ${question.prompt}`, {
        autoClose: false,
        actions: [
          {
            label: 'Answer',
            displayType: 'accent',
            callback: () => this._options.showQuestion(task.id)
          }
        ]
      });
      this._questions.set(task.id, { key, notification: id });
    }
  }

  private _withdraw(id: string): void {
    const shown = this._questions.get(id);
    if (shown) {
      Notification.dismiss(shown.notification);
      this._questions.delete(id);
    }
  }

  private _model: TasksModel;
  private _options: TaskNotifier.IOptions;
  /** Task id -> the question notification on screen. */
  private _questions = new Map<string, { key: string; notification: string }>();
  /** The success toast that is up (until `at` + SUCCESS_MS), and how many it tells of. */
  private _success: { id: string; count: number; at: number } | null = null;
  /** When the last separate failure toasts were shown. */
  private _errors: number[] = [];
  /** The toast that groups failures past the burst. */
  private _errorGroup: { id: string; count: number } | null = null;
}

export namespace TaskNotifier {
  export interface IOptions {
    model: TasksModel;
    showTask: (id: string) => void;
    showQuestion: (id: string) => void;
    openLog: (id: string) => void;
  }
}
