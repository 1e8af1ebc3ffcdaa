/**
 * "Run as job…", "Schedule…" and editing a schedule: a dialog around `JobForm`
 * that stays open until the server accepts (its refusals show inline), then
 * answers the new task or schedule.
 */
import { Dialog } from '@jupyterlab/apputils';
import { ReactWidget } from '@jupyterlab/ui-components';
import * as React from 'react';

import { IScheduleBody, TasksAPIError, TasksConnection } from './connection';
import {
  IJobFormState,
  JobForm,
  initialFormState,
  parameterFields,
  parameterValues
} from './components/JobForm';
import { jobText } from './components/ScheduleRow';
import { IJobBody, ISchedule, ITask } from './types';

/** Wait after the last keystroke before asking for a preview. */
const PREVIEW_DELAY_MS = 250;

type Outcome = { task: ITask } | { schedule: ISchedule };

/** The dialog's body: owns the form state, the preview requests and the submit. */
class JobFormWidget extends ReactWidget {
  constructor(
    private readonly _connection: TasksConnection,
    readonly mode: 'job' | 'schedule',
    private readonly _notebook: string | null,
    private readonly _editing: ISchedule | null
  ) {
    super();
    this.addClass('jp-TasksDialog-body');
    const editing = _editing;
    this._state = initialFormState(
      editing
        ? {
            name: editing.name,
            cron: editing.cron,
            timezone: editing.timezone,
            catchUp: editing.catch_up
          }
        : { name: _notebook ? baseName(_notebook) : '', loading: _notebook !== null }
    );
    if (editing && !_notebook) {
      this._state.parametersNote = 'This job takes no notebook parameters.';
    }
    if (_notebook) {
      this._parametersRead = this._loadParameters(_notebook);
    }
    if (mode === 'schedule') {
      this._schedulePreview(0);
    }
  }

  /** What the server answered once it accepted. */
  outcome: Outcome | null = null;

  /** Send the job or schedule; true once the server accepted it. */
  async submit(): Promise<boolean> {
    if (this._state.busy) {
      return false;
    }
    if (this._state.loading) {
      // accepted before the notebook's parameters came: sent as soon as they are in
      this._set({ busy: true });
      await this._parametersRead;
      this._set({ busy: false });
    }
    const { values, errors } = parameterValues(this._state.parameters);
    const timeout = this._state.timeout.trim();
    if (this.mode === 'job' && timeout !== '' && !(Number(timeout) > 0)) {
      errors.push({ field: 'timeout', message: 'a number of seconds above 0' });
    }
    if (errors.length > 0) {
      this._set({ problem: 'Some fields need a fix.', errors });
      return false;
    }
    this._set({ busy: true, problem: null, errors: [] });
    try {
      this.outcome = await this._send(values, timeout);
      this._set({ busy: false });
      return true;
    } catch (error) {
      const apiError = error instanceof TasksAPIError ? error : null;
      this._set({
        busy: false,
        problem: apiError ? apiError.message : `Could not reach the server: ${String(error)}`,
        errors: apiError?.errors ?? []
      });
      return false;
    }
  }

  protected render(): JSX.Element {
    const target = this._notebook ?? (this._editing ? jobText(this._editing) : '');
    return (
      <JobForm
        mode={this.mode}
        target={target}
        state={this._state}
        onChange={change => this._edit(change)}
      />
    );
  }

  private async _send(parameters: Record<string, unknown>, timeout: string): Promise<Outcome> {
    const state = this._state;
    if (this.mode === 'job') {
      const job: IJobBody = { notebook: this._notebook!, parameters };
      if (state.queue.trim()) {
        job.queue = state.queue.trim();
      }
      if (timeout) {
        job.timeout = Number(timeout);
      }
      return { task: await this._connection.submit(job) };
    }
    const body: IScheduleBody = {
      name: state.name.trim(),
      cron: state.cron.trim(),
      timezone: state.timezone.trim(),
      catch_up: state.catchUp,
      job: this._job(parameters)
    };
    if (this._editing) {
      return { schedule: await this._connection.updateSchedule(this._editing.id, body) };
    }
    return { schedule: await this._connection.createSchedule(body) };
  }

  /** The job to schedule: the edited one keeps its other fields. */
  private _job(parameters: Record<string, unknown>): IJobBody {
    if (this._editing) {
      const job = { ...this._editing.job };
      if (job.notebook) {
        job.parameters = parameters;
      }
      return job;
    }
    return { notebook: this._notebook!, parameters };
  }

  private async _loadParameters(path: string): Promise<void> {
    const set = (this._editing?.job.parameters as Record<string, unknown> | undefined) ?? {};
    try {
      const answer = await this._connection.api.notebookParameters(path);
      this._set({
        loading: false,
        parameters: parameterFields(answer.parameters, set),
        parametersNote: answer.has_parameters_cell
          ? answer.parameters.length === 0
            ? 'The parameters cell assigns no names.'
            : null
          : 'This notebook has no cell tagged "parameters": values given here are injected at the top.'
      });
    } catch (error) {
      this._set({
        loading: false,
        parameters: parameterFields([], set),
        parametersNote: `Could not read the notebook's parameters: ${(error as Error).message}`
      });
    }
  }

  /** A user's edit: an earlier refusal no longer describes the form, so it goes. */
  private _edit(change: Partial<IJobFormState>): void {
    this._set({ ...change, problem: null, errors: [] });
  }

  private _set(change: Partial<IJobFormState>): void {
    const previous = this._state;
    this._state = { ...previous, ...change };
    if (
      this.mode === 'schedule' &&
      (change.cron !== undefined || change.timezone !== undefined) &&
      (this._state.cron !== previous.cron || this._state.timezone !== previous.timezone)
    ) {
      // a field the user edits loses its old server error; the preview says what is wrong now
      this._state.errors = this._state.errors.filter(e => !['cron', 'timezone'].includes(e.field));
      this._schedulePreview(PREVIEW_DELAY_MS);
    }
    this.update();
  }

  private _schedulePreview(delay: number): void {
    clearTimeout(this._previewTimer);
    this._previewTimer = setTimeout(() => void this._preview(), delay);
  }

  private async _preview(): Promise<void> {
    const request = ++this._previewRequest;
    const { cron, timezone } = this._state;
    try {
      const runs = await this._connection.api.previewSchedule(cron.trim(), timezone.trim(), 5);
      if (request === this._previewRequest) {
        this._set({ preview: runs, previewError: null });
      }
    } catch (error) {
      if (request === this._previewRequest) {
        const apiError = error instanceof TasksAPIError ? error : null;
        // shown under the cron field: only other fields need naming
        const message = apiError?.errors.length
          ? apiError.errors
              .map(e => (e.field === 'cron' ? e.message : `${e.field}: ${e.message}`))
              .join('; ')
          : (error as Error).message;
        this._set({ preview: [], previewError: message });
      }
    }
  }

  dispose(): void {
    clearTimeout(this._previewTimer);
    super.dispose();
  }

  private _state: IJobFormState;
  private _parametersRead: Promise<void> = Promise.resolve();
  private _previewTimer: ReturnType<typeof setTimeout> | undefined;
  private _previewRequest = 0;
}

/** A dialog whose accept button submits; it closes only once the server accepted. */
class SubmitDialog extends Dialog<void> {
  constructor(
    private readonly _form: JobFormWidget,
    title: string,
    acceptLabel: string
  ) {
    const buttons = [Dialog.cancelButton(), Dialog.okButton({ label: acceptLabel })];
    // The dialog moves the focus into its body once the browser is next idle, which can
    // be after the user started typing: to the field that has it then, not the first
    // one (the form focuses that itself as it opens); with none, to the accept button.
    super({ title, body: _form, buttons, defaultButton: 1, focusNodeSelector: ':focus' });
    this._buttonList = buttons;
    this.addClass('jp-TasksDialog-dialog');
  }

  resolve(index?: number): void {
    const button = this._buttonList[index ?? 1];
    if (!button || !button.accept) {
      super.resolve(index);
      return;
    }
    void this._form.submit().then(accepted => {
      if (accepted && !this.isDisposed) {
        super.resolve(index);
      }
    });
  }

  private _buttonList: Dialog.IButton[];
}

async function run(
  form: JobFormWidget,
  title: string,
  acceptLabel: string
): Promise<Outcome | null> {
  const dialog = new SubmitDialog(form, title, acceptLabel);
  const result = await dialog.launch();
  return result.button.accept ? form.outcome : null;
}

/** "Run as job…": the new task, or null when cancelled. */
export async function runNotebookAsJob(
  connection: TasksConnection,
  path: string
): Promise<ITask | null> {
  const form = new JobFormWidget(connection, 'job', path, null);
  const outcome = await run(form, 'Run as job', 'Run');
  return outcome && 'task' in outcome ? outcome.task : null;
}

/** "Schedule…": the new schedule, or null when cancelled. */
export async function scheduleNotebook(
  connection: TasksConnection,
  path: string
): Promise<ISchedule | null> {
  const form = new JobFormWidget(connection, 'schedule', path, null);
  const outcome = await run(form, 'Schedule notebook', 'Create schedule');
  return outcome && 'schedule' in outcome ? outcome.schedule : null;
}

/** Edit a schedule: the saved schedule, or null when cancelled. */
export async function editSchedule(
  connection: TasksConnection,
  schedule: ISchedule
): Promise<ISchedule | null> {
  const notebook = typeof schedule.job.notebook === 'string' ? schedule.job.notebook : null;
  const form = new JobFormWidget(connection, 'schedule', notebook, schedule);
  const outcome = await run(form, `Edit schedule "${schedule.name}"`, 'Save');
  return outcome && 'schedule' in outcome ? outcome.schedule : null;
}

function baseName(path: string): string {
  const name = path.split('/').pop() ?? path;
  return name.replace(/\.ipynb$/, '');
}
