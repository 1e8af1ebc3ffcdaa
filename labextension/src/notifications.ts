/**
 * Notifications about my own tasks (the owner the server stores for me, see
 * `GET /api/tasks/me`): a quiet toast when one succeeds, a sticky one with
 * "Open log" when one fails or times out, and a sticky question when one waits
 * for my answer, withdrawn as soon as the question is answered from anywhere.
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
    if (kind === 'success') {
      Notification.success(`Task "${name}" succeeded.`, {
        autoClose: SUCCESS_MS,
        actions: [{ label: 'Show', callback: () => this._options.showTask(task.id) }]
      });
      return;
    }
    const what = task.status === 'timeout' ? 'timed out' : task.status;
    const detail = task.error?.message ? `: ${task.error.message}` : '.';
    Notification.error(`Task "${name}" ${what}${detail}`, {
      autoClose: false,
      actions: [
        { label: 'Open log', callback: () => this._options.openLog(task.id) },
        {
          label: 'Show',
          displayType: 'link',
          callback: () => this._options.showTask(task.id)
        }
      ]
    });
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
}

export namespace TaskNotifier {
  export interface IOptions {
    model: TasksModel;
    showTask: (id: string) => void;
    showQuestion: (id: string) => void;
    openLog: (id: string) => void;
  }
}
