/**
 * The side panel: filters on top, one row per task, details on demand.
 *
 * The widget owns the view state (expanded rows, how many rows are shown) and
 * re-renders on `model.changed`, which fires at most once per animation frame.
 * Rows are memoised on the task object, which the model replaces only when the
 * task changes, so a burst of progress events re-renders only those rows.
 */
import { Notification } from '@jupyterlab/apputils';
import { ReactWidget } from '@jupyterlab/ui-components';
import { Message } from '@lumino/messaging';
import * as React from 'react';

import { TasksAPI, TasksConnection } from './connection';
import { tasksIcon } from './icons';
import { stripAnsi } from './logview';
import { DEFAULT_FILTER } from './model';
import { ALL_STATUSES, IArtifact, ITask, isActive } from './types';

/** Rows rendered at first and added by "Show more"; keeps huge lists cheap. */
const ROW_BATCH = 200;
/** Longest params/result JSON shown inline. */
const MAX_JSON_CHARS = 4000;

export class TasksPanel extends ReactWidget {
  constructor(options: TasksPanel.IOptions) {
    super();
    this._connection = options.connection;
    this._openLog = options.openLog;
    this._currentUser = options.currentUser;
    this.id = 'jupyter-tasks-panel';
    this.addClass('jp-TasksPanel');
    this.node.dataset.testid = 'tasks-panel';
    this.title.icon = tasksIcon;
    this.title.caption = 'Tasks';
    this._connection.model.changed.connect(this._refresh, this);
    this._connection.stream.statusChanged.connect(this._refresh, this);
    this._connection.errorChanged.connect(this._refresh, this);
  }

  /** Show a task: clear filters that hide it, expand it and scroll to it. */
  reveal(id: string): void {
    const model = this._connection.model;
    if (model.get(id) && !model.visible.some(task => task.id === id)) {
      model.setFilter(DEFAULT_FILTER);
      this._filterGeneration++;
    }
    this._expanded.add(id);
    this._revealed = { id, nonce: this._revealed.nonce + 1 };
    this.update();
  }

  dispose(): void {
    clearInterval(this._ticker);
    super.dispose();
  }

  protected onAfterAttach(msg: Message): void {
    super.onAfterAttach(msg);
    // Elapsed times of running tasks move even when no event arrives.
    this._ticker = setInterval(() => {
      if (this._connection.model.count('running') > 0) {
        this.update();
      }
    }, 1000);
  }

  protected onBeforeDetach(msg: Message): void {
    clearInterval(this._ticker);
    super.onBeforeDetach(msg);
  }

  protected onUpdateRequest(msg: Message): void {
    // A collapsed panel skips renders and catches up once shown.
    if (!this.isVisible) {
      this._stale = true;
      return;
    }
    this._stale = false;
    super.onUpdateRequest(msg);
  }

  protected onAfterShow(msg: Message): void {
    super.onAfterShow(msg);
    if (this._stale) {
      this.update();
    }
  }

  protected render(): JSX.Element {
    const connection = this._connection;
    const model = connection.model;
    const tasks = model.visible;
    const revealedIndex = tasks.findIndex(task => task.id === this._revealed.id);
    if (revealedIndex >= this._limit) {
      this._limit = revealedIndex + 1;
    }
    const shown = tasks.slice(0, this._limit);
    const now = Date.now();
    return (
      <>
        <div className="jp-TasksPanel-header">
          <h2 className="jp-TasksPanel-title">Tasks</h2>
          <span
            className="jp-TasksPanel-connection"
            data-state={connection.stream.status}
            title="Live updates from the server"
          >
            {CONNECTION_LABELS[connection.stream.status]}
          </span>
        </div>
        {this._renderFilters()}
        {connection.error !== null && (
          <div className="jp-TasksPanel-loadError" role="alert">
            <span>Could not load tasks: {connection.error}</span>
            <button className="jp-Button jp-mod-styled" onClick={() => void connection.refresh()}>
              Retry
            </button>
          </div>
        )}
        <ul className="jp-TasksPanel-list" data-testid="tasks-list">
          {shown.map(task => (
            <TaskRow
              key={task.id}
              task={task}
              // Only active rows depend on the clock; others stay memoised.
              now={isActive(task) ? now : 0}
              expanded={this._expanded.has(task.id)}
              revealNonce={task.id === this._revealed.id ? this._revealed.nonce : 0}
              api={connection.api}
              actions={this._actions}
            />
          ))}
        </ul>
        {tasks.length === 0 && (
          <div className="jp-TasksPanel-empty">
            {model.size === 0 ? 'No tasks yet.' : 'No task matches the filters.'}
          </div>
        )}
        {tasks.length > shown.length && (
          <button
            className="jp-TasksPanel-more jp-Button jp-mod-styled"
            onClick={() => {
              this._limit += ROW_BATCH;
              this.update();
            }}
          >
            Show more ({tasks.length - shown.length} hidden)
          </button>
        )}
        {connection.hasOlder && (
          <button
            className="jp-TasksPanel-older jp-Button jp-mod-styled"
            onClick={() => void connection.loadOlder().then(() => this.update())}
          >
            Load older tasks
          </button>
        )}
      </>
    );
  }

  private _renderFilters(): JSX.Element {
    const model = this._connection.model;
    const filter = model.filter;
    const me = this._currentUser();
    const owners = me === null || model.owners.includes(me) ? model.owners : [me, ...model.owners];
    // Inputs are uncontrolled (renders lag input by a frame, which would make
    // controlled ones jump); a new key remounts them when `reveal` resets.
    const key = this._filterGeneration;
    return (
      <div className="jp-TasksPanel-filters">
        <input
          key={`search-${key}`}
          className="jp-TasksPanel-search jp-mod-styled"
          type="search"
          placeholder="Search label, name or id"
          aria-label="Search tasks"
          defaultValue={filter.search}
          onChange={event => model.setFilter({ search: event.currentTarget.value })}
        />
        <div className="jp-TasksPanel-statusFilter" role="group" aria-label="Filter by status">
          {ALL_STATUSES.map(status => {
            const on = filter.statuses.has(status);
            return (
              <button
                key={status}
                className={`jp-TasksPanel-statusToggle${on ? ' jp-mod-active' : ''}`}
                data-status={status}
                aria-pressed={on}
                onClick={() => {
                  const statuses = new Set(filter.statuses);
                  if (on) {
                    statuses.delete(status);
                  } else {
                    statuses.add(status);
                  }
                  model.setFilter({ statuses });
                }}
              >
                {status} <span className="jp-TasksPanel-count">{model.count(status)}</span>
              </button>
            );
          })}
        </div>
        <div className="jp-TasksPanel-filterRow">
          <label
            className="jp-TasksPanel-thisNotebookLabel"
            title={model.currentNotebook ?? 'No notebook has been focused yet'}
          >
            <input
              key={`nb-${key}`}
              className="jp-TasksPanel-thisNotebook"
              type="checkbox"
              defaultChecked={filter.thisNotebook}
              onChange={event => model.setFilter({ thisNotebook: event.currentTarget.checked })}
            />
            This notebook
          </label>
          <select
            key={`owner-${key}`}
            className="jp-TasksPanel-ownerFilter"
            aria-label="Filter by owner"
            defaultValue={filter.owner ?? ''}
            onChange={event => model.setFilter({ owner: event.currentTarget.value || null })}
          >
            <option value="">Everyone</option>
            {owners.map(owner => (
              <option key={owner} value={owner}>
                {owner === me ? `${owner} (me)` : owner}
              </option>
            ))}
          </select>
        </div>
      </div>
    );
  }

  private _refresh(): void {
    this.update();
  }

  private _act(what: string, action: () => Promise<unknown>): void {
    action().catch((error: Error) => {
      Notification.error(`Could not ${what}: ${error.message}`, { autoClose: 8000 });
    });
  }

  /** Stable callbacks, so memoised rows do not re-render for new closures. */
  private _actions: IRowActions = {
    toggle: (id: string) => {
      if (!this._expanded.delete(id)) {
        this._expanded.add(id);
      }
      this.update();
    },
    cancel: (id: string) => this._act('cancel the task', () => this._connection.cancel(id)),
    rerun: (id: string) =>
      this._act('rerun the task', async () => {
        const task = await this._connection.rerun(id);
        this.reveal(task.id);
      }),
    confirm: (id: string, answer: string) =>
      this._act('send the answer', () => this._connection.confirm(id, answer)),
    openLog: (id: string) => this._openLog(id),
    reveal: (id: string) => this.reveal(id)
  };

  private _connection: TasksConnection;
  private _openLog: (id: string) => void;
  private _currentUser: () => string | null;
  private _expanded = new Set<string>();
  private _revealed: { id: string | null; nonce: number } = { id: null, nonce: 0 };
  private _limit = ROW_BATCH;
  private _filterGeneration = 0;
  private _stale = false;
  private _ticker: ReturnType<typeof setInterval> | undefined;
}

export namespace TasksPanel {
  export interface IOptions {
    connection: TasksConnection;
    openLog: (id: string) => void;
    /** The signed-in user's name, once known; compared with `task.owner`. */
    currentUser: () => string | null;
  }
}

const CONNECTION_LABELS = {
  open: 'live',
  connecting: 'connecting…',
  closed: 'offline, retrying…'
};

interface IRowActions {
  toggle(id: string): void;
  cancel(id: string): void;
  rerun(id: string): void;
  confirm(id: string, answer: string): void;
  openLog(id: string): void;
  reveal(id: string): void;
}

interface IRowProps {
  task: ITask;
  /** Clock for the elapsed time; 0 for finished tasks, whose time is fixed. */
  now: number;
  expanded: boolean;
  /** Changes each time this row is revealed, to scroll it into view again. */
  revealNonce: number;
  api: TasksAPI;
  actions: IRowActions;
}

const TaskRow = React.memo(function TaskRow(props: IRowProps): JSX.Element {
  const { task, actions, expanded } = props;
  const ref = React.useRef<HTMLLIElement>(null);
  React.useEffect(() => {
    if (props.revealNonce > 0) {
      ref.current?.scrollIntoView({ block: 'nearest' });
    }
  }, [props.revealNonce]);

  const active = isActive(task);
  const cancelling = active && !!task.cancel_requested;
  const pending = task.confirmation && task.confirmation.answer == null ? task.confirmation : null;
  const elapsed = elapsedText(task, props.now);
  const notebook = task.origin?.notebook;
  return (
    <li
      ref={ref}
      className={`jp-TasksPanel-row${props.revealNonce > 0 ? ' jp-mod-revealed' : ''}`}
      data-task-id={task.id}
      data-status={task.status}
      data-testid="task-row"
    >
      <div
        className="jp-TasksPanel-rowHeader"
        role="button"
        tabIndex={0}
        aria-expanded={expanded}
        onClick={() => actions.toggle(task.id)}
        onKeyDown={event => {
          if (event.key === 'Enter' || event.key === ' ') {
            event.preventDefault();
            actions.toggle(task.id);
          }
        }}
      >
        <span className={`jp-TasksPanel-status jp-mod-${task.status}`} data-status={task.status}>
          {cancelling ? 'cancelling' : task.status}
        </span>
        <span className="jp-TasksPanel-label" title={task.id}>
          {task.label || task.name || task.kind}
        </span>
        {elapsed && <span className="jp-TasksPanel-elapsed">{elapsed}</span>}
      </div>
      {task.progress && <Progress task={task} />}
      <div className="jp-TasksPanel-meta">
        {task.owner && <span className="jp-TasksPanel-owner">{task.owner}</span>}
        <span className="jp-TasksPanel-origin" title={notebook ?? undefined}>
          {notebook ? basename(notebook) : task.origin?.type ?? ''}
        </span>
      </div>
      {task.error && task.status !== 'cancelled' && (
        // a cancel is someone's decision, not a failure: the status badge says it
        <div className="jp-TasksPanel-error">
          {task.error.type}: {task.error.message}
        </div>
      )}
      {pending && (
        <Confirmation
          prompt={pending.prompt}
          choices={pending.choices}
          onAnswer={answer => actions.confirm(task.id, answer)}
        />
      )}
      <div className="jp-TasksPanel-actions">
        {active && (
          <button
            className="jp-TasksPanel-cancel jp-Button jp-mod-styled jp-mod-warn"
            disabled={cancelling}
            onClick={() => actions.cancel(task.id)}
          >
            Cancel
          </button>
        )}
        {!active && (
          <button
            className="jp-TasksPanel-rerun jp-Button jp-mod-styled"
            onClick={() => actions.rerun(task.id)}
          >
            Rerun
          </button>
        )}
        <button
          className="jp-TasksPanel-log jp-Button jp-mod-styled"
          onClick={() => actions.openLog(task.id)}
        >
          Log
        </button>
      </div>
      {expanded && <Details task={task} api={props.api} actions={actions} />}
    </li>
  );
});

function Progress(props: { task: ITask }): JSX.Element {
  const { current, total, message } = props.task.progress!;
  const known = typeof total === 'number' && total > 0 && typeof current === 'number';
  const fraction = known ? Math.min(1, Math.max(0, current! / total!)) : 0;
  return (
    <div
      className={`jp-TasksPanel-progress${known ? '' : ' jp-mod-indeterminate'}`}
      role="progressbar"
      aria-valuemin={0}
      aria-valuemax={known ? total! : undefined}
      aria-valuenow={known ? current! : undefined}
    >
      <div className="jp-TasksPanel-progressTrack">
        <div className="jp-TasksPanel-progressBar" style={{ width: `${fraction * 100}%` }} />
      </div>
      <span className="jp-TasksPanel-progressText">
        {known ? `${current}/${total}` : current ?? ''}
        {message ? ` ${message}` : ''}
      </span>
    </div>
  );
}

function Confirmation(props: {
  prompt: string;
  choices: string[] | null;
  onAnswer: (answer: string) => void;
}): JSX.Element {
  const [text, setText] = React.useState('');
  const choices = props.choices ?? [];
  return (
    <div className="jp-TasksPanel-confirmation" role="group" aria-label="Confirmation">
      <div className="jp-TasksPanel-prompt">{props.prompt}</div>
      {choices.length > 0 ? (
        choices.map(choice => (
          <button
            key={choice}
            className="jp-TasksPanel-answer jp-Button jp-mod-styled jp-mod-accept"
            data-answer={choice}
            onClick={() => props.onAnswer(choice)}
          >
            {choice}
          </button>
        ))
      ) : (
        <form
          onSubmit={event => {
            event.preventDefault();
            props.onAnswer(text);
          }}
        >
          <input
            className="jp-TasksPanel-answerText jp-mod-styled"
            value={text}
            onChange={event => setText(event.currentTarget.value)}
          />
          <button className="jp-TasksPanel-answer jp-Button jp-mod-styled jp-mod-accept">
            Send
          </button>
        </form>
      )}
    </div>
  );
}

function Details(props: { task: ITask; api: TasksAPI; actions: IRowActions }): JSX.Element {
  const { task, actions } = props;
  const traceback = task.error?.traceback;
  return (
    <div className="jp-TasksPanel-details">
      <dl className="jp-TasksPanel-fields">
        <dt>id</dt>
        <dd className="jp-TasksPanel-id">{task.id}</dd>
        <dt>kind</dt>
        <dd>
          {task.kind}
          {task.name ? ` · ${task.name}` : ''}
        </dd>
        {task.queue && (
          <>
            <dt>queue</dt>
            <dd>{task.queue}</dd>
          </>
        )}
        {task.attempts != null && (
          <>
            <dt>attempts</dt>
            <dd>
              {task.attempts}
              {task.max_retries != null ? ` (max retries ${task.max_retries})` : ''}
            </dd>
          </>
        )}
        {task.parent_id && (
          <>
            <dt>{task.relationship ?? 'parent'} of</dt>
            <dd>
              <button
                className="jp-TasksPanel-parent jp-TasksPanel-link"
                onClick={() => actions.reveal(task.parent_id!)}
              >
                {task.parent_id}
              </button>
            </dd>
          </>
        )}
        <dt>created</dt>
        <dd>{localTime(task.created_at)}</dd>
        {task.started_at && (
          <>
            <dt>started</dt>
            <dd>{localTime(task.started_at)}</dd>
          </>
        )}
        {task.finished_at && (
          <>
            <dt>finished</dt>
            <dd>{localTime(task.finished_at)}</dd>
          </>
        )}
      </dl>
      {task.params != null && <JsonBlock title="params" value={task.params} />}
      {task.result != null && <JsonBlock title="result" value={task.result} />}
      {traceback && (
        <pre className="jp-TasksPanel-traceback">
          {stripAnsi(Array.isArray(traceback) ? traceback.join('\n') : traceback)}
        </pre>
      )}
      <Artifacts task={task} api={props.api} />
    </div>
  );
}

function JsonBlock(props: { title: string; value: unknown }): JSX.Element {
  let text = JSON.stringify(props.value, null, 2) ?? String(props.value);
  if (text.length > MAX_JSON_CHARS) {
    text = `${text.slice(0, MAX_JSON_CHARS)}\n…`;
  }
  return (
    <div className={`jp-TasksPanel-json jp-TasksPanel-${props.title}`}>
      <div className="jp-TasksPanel-jsonTitle">{props.title}</div>
      <pre>{text}</pre>
    </div>
  );
}

function Artifacts(props: { task: ITask; api: TasksAPI }): JSX.Element | null {
  const { task, api } = props;
  const [items, setItems] = React.useState<IArtifact[] | null>(null);
  const [error, setError] = React.useState<string | null>(null);
  React.useEffect(() => {
    let current = true;
    api.artifacts(task.id).then(
      list => current && (setItems(list), setError(null)),
      (reason: Error) => current && setError(reason.message)
    );
    return () => {
      current = false;
    };
    // A status change is when new artifacts can have appeared.
  }, [api, task.id, task.status]);

  if (error !== null) {
    return <div className="jp-TasksPanel-artifactsError">Artifacts: {error}</div>;
  }
  if (!items || items.length === 0) {
    return null;
  }
  return (
    <ul className="jp-TasksPanel-artifacts">
      {items.map(item => (
        <li key={item.name}>
          <button
            className="jp-TasksPanel-artifact jp-TasksPanel-link"
            data-name={item.name}
            title={`${item.content_type}, sha256 ${item.sha256}`}
            onClick={() => void download(api, task.id, item.name)}
          >
            {item.name}
          </button>
          <span className="jp-TasksPanel-artifactSize">{formatBytes(item.size)}</span>
        </li>
      ))}
    </ul>
  );
}

/** Download through an object URL, because a plain link would not be authenticated. */
async function download(api: TasksAPI, id: string, name: string): Promise<void> {
  try {
    const url = URL.createObjectURL(await api.artifactBlob(id, name));
    const link = document.createElement('a');
    link.href = url;
    link.download = name;
    document.body.appendChild(link);
    link.click();
    link.remove();
    // The browser reads the URL asynchronously after the click.
    setTimeout(() => URL.revokeObjectURL(url), 60_000);
  } catch (error) {
    Notification.error(`Could not download ${name}: ${(error as Error).message}`, {
      autoClose: 8000
    });
  }
}

function elapsedText(task: ITask, now: number): string | null {
  const start = task.started_at ? Date.parse(task.started_at) : NaN;
  if (Number.isNaN(start)) {
    return null;
  }
  const end = task.finished_at ? Date.parse(task.finished_at) : now;
  return Number.isNaN(end) || end < start ? null : formatDuration(end - start);
}

function formatDuration(ms: number): string {
  const seconds = Math.floor(ms / 1000);
  if (seconds < 60) {
    return `${seconds}s`;
  }
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) {
    return `${minutes}m ${String(seconds % 60).padStart(2, '0')}s`;
  }
  return `${Math.floor(minutes / 60)}h ${String(minutes % 60).padStart(2, '0')}m`;
}

function formatBytes(size: number): string {
  if (size < 1024) {
    return `${size} B`;
  }
  const units = ['KiB', 'MiB', 'GiB'];
  let value = size / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(1)} ${units[unit]}`;
}

function localTime(iso: string | null): string {
  return iso ? new Date(iso).toLocaleString() : '';
}

function basename(path: string): string {
  return path.slice(path.lastIndexOf('/') + 1);
}
