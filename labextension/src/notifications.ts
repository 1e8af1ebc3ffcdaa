/**
 * Notifications about my own tasks (the owner the server stores for me, see
 * `GET /api/tasks/me`): a quiet toast when one succeeds, a sticky one with
 * "Open log" when one fails or times out, and a sticky question when one waits
 * for my answer, withdrawn as soon as the question is answered from anywhere.
 *
 * Many ends at once (a sweep of 1,000 jobs) are not 1,000 toasts. Ends are told
 * in windows: the first success of a window is told at once, the ones after it
 * wait for the window to end (the toast's life) and are told together in one
 * toast that says how many it covers ("and 41 more"); failures likewise, past
 * the first few of a window. Every end is told in exactly one toast whatever
 * the arrival timing, and a toast never changes once shown: JupyterLab drops an
 * update that reaches a toast before it is drawn (the toast keeps its first
 * text while the notification centre has the new one), so a count kept by
 * updating one toast was lost whenever ends came close together.
 */
import { Notification } from '@jupyterlab/apputils';

import { shortId, taskLabel } from './format';
import { TasksModel, pendingQuestion } from './model';
import { ToastWindow } from './toastwindow';
import { ITask, ITaskEvent, isActive } from './types';

/** Terminal events worth a notification; a cancellation was asked for, so it is not. */
const FINISHED: Record<string, 'success' | 'error'> = {
  'task.succeeded': 'success',
  'task.failed': 'error',
  'task.timeout': 'error',
  'task.oom': 'error',
  'task.interrupted': 'error'
};

/** How a notification says a task ended (a status word alone read "oom"). */
const ENDED_WORDS: Partial<Record<string, string>> = {
  failed: 'failed',
  timeout: 'timed out',
  oom: 'ran out of memory',
  interrupted: 'was interrupted'
};

/** How long the success toast stays, and the window whose successes one toast tells. */
export const SUCCESS_MS = 4000;

/** Failures told each in their own toast in a fresh window; the rest of it are grouped. */
export const ERROR_BURST = 3;
export const ERROR_WINDOW_MS = 5000;

/**
 * Failure toasts kept on screen at once; an older one then closes by itself and
 * stays in the notification centre. Eight stacked sticky toasts pushed the newest
 * (the group that tells how many more failed) off the top of the screen.
 */
export const MAX_FAILURE_TOASTS = 3;

/** One end to tell: what happened to the task, and the actions its toast offers. */
interface IEnding {
  text: string;
  actions: Notification.IAction[];
}

export function taskName(task: ITask): string {
  return taskLabel(task, task.kind || shortId(task.id));
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
      this._successes.add({
        text: `Task "${name}" succeeded`,
        actions: [{ label: 'Show', callback: () => this._options.showTask(task.id) }]
      });
      return;
    }
    const what = ENDED_WORDS[task.status] ?? task.status;
    const detail = task.error?.message ? `: ${task.error.message}` : '.';
    this._failures.add({
      text: `Task "${name}" ${what}${detail}`,
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

  /**
   * Announce the questions of mine the model holds (call when it changes): one that
   * waited before the page loaded arrives with the first read, not as an event, and
   * went unannounced while the status bar said "1 needs you".
   */
  announceWaiting(): void {
    for (const task of this._model.waitingForMe) {
      this._question(task);
    }
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
  /** Successes: the first of a window at once, the rest in one toast at its end. */
  private _successes = new ToastWindow<IEnding>({
    windowMs: SUCCESS_MS,
    singles: 1,
    tellOne: ({ text, actions }) =>
      Notification.success(`${text}.`, { autoClose: SUCCESS_MS, actions }),
    tellGroup: ({ count, latest }) =>
      // the count first: JupyterLab cuts a long message, and a long label's end with it
      Notification.success(`${count} tasks succeeded; latest: ${latest.text}.`, {
        autoClose: SUCCESS_MS,
        actions: latest.actions
      })
  });
  /** Failures: sticky, each alone up to the burst, then grouped once per window. */
  private _failures = new ToastWindow<IEnding>({
    windowMs: ERROR_WINDOW_MS,
    singles: ERROR_BURST,
    tellOne: ({ text, actions }) =>
      this._sticky(Notification.error(text, { autoClose: false, actions })),
    tellGroup: ({ count, latest }) =>
      this._sticky(
        Notification.error(`${count} more tasks ended badly; latest: ${latest.text}`, {
          autoClose: false,
          actions: latest.actions
        })
      )
  });

  /** Keep `id` on screen; past MAX_FAILURE_TOASTS the oldest closes by itself. */
  private _sticky(id: string): void {
    this._stuck.push(id);
    while (this._stuck.length > MAX_FAILURE_TOASTS) {
      const oldest = this._stuck.shift()!;
      const kept = Notification.manager.notifications.find(n => n.id === oldest);
      if (kept) {
        // its toast goes; the notification stays in the centre (a dismiss would drop it)
        Notification.update({ id: oldest, message: kept.message, autoClose: 1 });
      }
    }
  }

  /** The failure toasts made sticky, oldest first. */
  private _stuck: string[] = [];
}

export namespace TaskNotifier {
  export interface IOptions {
    model: TasksModel;
    showTask: (id: string) => void;
    showQuestion: (id: string) => void;
    openLog: (id: string) => void;
  }
}
