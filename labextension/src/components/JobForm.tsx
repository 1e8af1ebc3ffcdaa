/**
 * The form of the "Run as job…" and "Schedule…" dialogs: the notebook's
 * parameters (prefilled from its `parameters` cell, edited as JSON), then queue
 * and timeout, or name, cron, time zone and catch-up with the next run times
 * previewed as the user types. Server errors (problem+json) show inline.
 */
import * as React from 'react';

import { browserTimeZone, humanCron } from '../cron';
import { IFieldError, INotebookParameter } from '../types';

/** One parameter as the form edits it. */
export interface IParameterField {
  name: string;
  type: string;
  /** The right-hand side as the notebook has it. */
  source: string;
  /** The JSON text shown; '' means "keep the notebook's default". */
  text: string;
  /** The text first shown: a parameter is sent only when edited or already set. */
  initial: string;
  /** Set by the job being edited: always sent. */
  set: boolean;
}

export interface IJobFormState {
  parameters: IParameterField[];
  /** null while the notebook's parameters are read. */
  parametersNote: string | null;
  loading: boolean;
  queue: string;
  timeout: string;
  name: string;
  cron: string;
  timezone: string;
  catchUp: string;
  preview: string[];
  previewError: string | null;
  /** The last refusal: its detail and field errors. */
  problem: string | null;
  errors: IFieldError[];
  busy: boolean;
}

export function initialFormState(change: Partial<IJobFormState> = {}): IJobFormState {
  return {
    parameters: [],
    parametersNote: null,
    loading: false,
    queue: '',
    timeout: '',
    name: '',
    cron: '0 9 * * 1-5',
    timezone: browserTimeZone(),
    catchUp: 'once',
    preview: [],
    previewError: null,
    problem: null,
    errors: [],
    busy: false,
    ...change
  };
}

/** Fields for the parameters of a notebook, with the values a job already sets. */
export function parameterFields(
  parameters: readonly INotebookParameter[],
  set: Record<string, unknown> = {}
): IParameterField[] {
  const fields = parameters.map(p => {
    // a default the server could not read as a value (an expression) shows empty:
    // sending its null would replace the notebook's own expression
    const text = p.default === null && p.type !== 'None' ? '' : JSON.stringify(p.default, null, 0);
    const isSet = Object.prototype.hasOwnProperty.call(set, p.name);
    const shown = isSet ? JSON.stringify(set[p.name]) : text;
    return { name: p.name, type: p.type, source: p.source, text: shown, initial: text, set: isSet };
  });
  // values the job sets that the parameters cell no longer has stay editable
  for (const [name, value] of Object.entries(set)) {
    if (!parameters.some(p => p.name === name)) {
      const text = JSON.stringify(value);
      fields.push({ name, type: 'unknown', source: '', text, initial: text, set: true });
    }
  }
  return fields;
}

/**
 * The parameters to send, or the field errors of those that are not JSON.
 */
export function parameterValues(fields: readonly IParameterField[]): {
  values: Record<string, unknown>;
  errors: IFieldError[];
} {
  const values: Record<string, unknown> = {};
  const errors: IFieldError[] = [];
  for (const field of fields) {
    if (!field.set && field.text === field.initial) {
      continue;
    }
    if (field.text.trim() === '') {
      continue;
    }
    try {
      values[field.name] = JSON.parse(field.text);
    } catch {
      errors.push({
        field: `parameters.${field.name}`,
        message: 'not JSON (a string needs "quotes")'
      });
    }
  }
  return { values, errors };
}

/** Messages for a field: exact, or nested under it (`job.parameters.x` for `parameters.x`). */
function messagesFor(errors: readonly IFieldError[], ...fields: string[]): string[] {
  return errors
    .filter(e => fields.some(f => e.field === f || e.field === `job.${f}`))
    .map(e => e.message);
}

function FieldError(props: { messages: string[]; testid: string }): JSX.Element | null {
  if (props.messages.length === 0) {
    return null;
  }
  return (
    <div className="jp-TasksDialog-fieldError" role="alert" data-testid={props.testid}>
      {props.messages.join('; ')}
    </div>
  );
}

/** Local time of an ISO instant in the schedule's zone (the browser's when the zone is bad). */
function runTime(iso: string, timezone: string): string {
  const date = new Date(iso);
  const options: Intl.DateTimeFormatOptions = {
    weekday: 'short',
    year: 'numeric',
    month: 'short',
    day: 'numeric',
    hour: '2-digit',
    minute: '2-digit'
  };
  try {
    return date.toLocaleString(undefined, { ...options, timeZone: timezone });
  } catch {
    return date.toLocaleString(undefined, options);
  }
}

export function JobForm(props: {
  mode: 'job' | 'schedule';
  /** The notebook, or a description of the job for schedules of other jobs. */
  target: string;
  state: IJobFormState;
  onChange: (change: Partial<IJobFormState>) => void;
}): JSX.Element {
  const { state, onChange, mode } = props;
  const errors = state.errors;
  const formRef = React.useRef<HTMLFormElement>(null);
  React.useEffect(() => {
    // the first field takes the focus as the form opens, unless one already has it
    const form = formRef.current;
    if (form && !form.contains(document.activeElement)) {
      form.querySelector('input')?.focus();
    }
  }, []);
  const setParameter = (index: number, text: string) => {
    const parameters = state.parameters.slice();
    parameters[index] = { ...parameters[index], text };
    onChange({ parameters });
  };
  const claimed = new Set<string>([
    'queue',
    'timeout',
    'name',
    'cron',
    'timezone',
    'catch_up',
    ...state.parameters.map(p => `parameters.${p.name}`)
  ]);
  // refusals no field shows stay in the banner, so nothing is lost
  const unplaced = errors.filter(e => !claimed.has(e.field.replace(/^job\./, '')));
  return (
    <form
      ref={formRef}
      className="jp-TasksDialog"
      data-mode={mode}
      onSubmit={event => event.preventDefault()}
      aria-busy={state.busy}
    >
      <div className="jp-TasksDialog-target" title={props.target}>
        {props.target}
      </div>
      {state.problem !== null && (
        <div className="jp-TasksDialog-problem" role="alert" data-testid="dialog-problem">
          <div>{state.problem}</div>
          {unplaced.map((e, i) => (
            <div key={i} className="jp-TasksDialog-problemField">
              {e.field ? `${e.field}: ` : ''}
              {e.message}
            </div>
          ))}
        </div>
      )}
      <fieldset className="jp-TasksDialog-parameters">
        <legend>Parameters</legend>
        {state.loading && <div className="jp-TasksDialog-note">Reading the notebook…</div>}
        {state.parametersNote !== null && (
          <div className="jp-TasksDialog-note">{state.parametersNote}</div>
        )}
        {state.parameters.map((p, index) => (
          <label key={p.name} className="jp-TasksDialog-parameter" data-parameter={p.name}>
            <span className="jp-TasksDialog-parameterName">{p.name}</span>
            <span className="jp-TasksDialog-type" title={p.source ? `= ${p.source}` : undefined}>
              {p.type}
            </span>
            <input
              className="jp-mod-styled jp-TasksDialog-parameterValue"
              value={p.text}
              placeholder={p.source ? `notebook default: ${p.source}` : 'JSON value'}
              spellCheck={false}
              aria-label={`parameter ${p.name} (JSON)`}
              onChange={event => setParameter(index, event.currentTarget.value)}
            />
            <FieldError
              messages={messagesFor(errors, `parameters.${p.name}`)}
              testid="parameter-error"
            />
          </label>
        ))}
      </fieldset>
      {mode === 'job' ? (
        <div className="jp-TasksDialog-grid">
          <label>
            <span>Queue</span>
            <input
              className="jp-mod-styled jp-TasksDialog-queue"
              value={state.queue}
              placeholder="default"
              onChange={event => onChange({ queue: event.currentTarget.value })}
            />
            <FieldError messages={messagesFor(errors, 'queue')} testid="queue-error" />
          </label>
          <label>
            <span>Timeout (s)</span>
            <input
              className="jp-mod-styled jp-TasksDialog-timeout"
              value={state.timeout}
              inputMode="decimal"
              placeholder="none"
              onChange={event => onChange({ timeout: event.currentTarget.value })}
            />
            <FieldError messages={messagesFor(errors, 'timeout')} testid="timeout-error" />
          </label>
        </div>
      ) : (
        <div className="jp-TasksDialog-grid">
          <label>
            <span>Name</span>
            <input
              className="jp-mod-styled jp-TasksDialog-name"
              value={state.name}
              onChange={event => onChange({ name: event.currentTarget.value })}
            />
            <FieldError messages={messagesFor(errors, 'name')} testid="name-error" />
          </label>
          <label>
            <span>Cron</span>
            <input
              className="jp-mod-styled jp-TasksDialog-cron"
              value={state.cron}
              spellCheck={false}
              placeholder="minute hour day month weekday"
              onChange={event => onChange({ cron: event.currentTarget.value })}
            />
            <FieldError
              messages={
                // the server's refusal, else what the live preview found
                messagesFor(errors, 'cron').length > 0
                  ? messagesFor(errors, 'cron')
                  : state.previewError
                    ? [state.previewError]
                    : []
              }
              testid="cron-error"
            />
          </label>
          <label>
            <span>Time zone</span>
            <input
              className="jp-mod-styled jp-TasksDialog-timezone"
              value={state.timezone}
              spellCheck={false}
              onChange={event => onChange({ timezone: event.currentTarget.value })}
            />
            <FieldError messages={messagesFor(errors, 'timezone')} testid="timezone-error" />
          </label>
          <label>
            <span>Missed runs</span>
            <select
              className="jp-mod-styled jp-TasksDialog-catchUp"
              value={state.catchUp}
              onChange={event => onChange({ catchUp: event.currentTarget.value })}
            >
              <option value="once">run once when the server is back</option>
              <option value="skip">skip</option>
            </select>
            <FieldError messages={messagesFor(errors, 'catch_up')} testid="catchup-error" />
          </label>
          <div className="jp-TasksDialog-preview" data-testid="schedule-preview">
            <div className="jp-TasksDialog-previewTitle">
              {state.previewError === null && state.preview.length > 0
                ? `${humanCron(state.cron)}: next runs`
                : 'Next runs'}
            </div>
            {state.previewError === null && (
              <ol>
                {state.preview.map(run => (
                  <li key={run} data-run={run} title={new Date(run).toLocaleString()}>
                    {runTime(run, state.timezone)}
                  </li>
                ))}
              </ol>
            )}
          </div>
        </div>
      )}
    </form>
  );
}
