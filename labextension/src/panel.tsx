/**
 * The side panel: one compact filter line, then sections "Needs you",
 * "Running", "Queued" and "Recent" with one line per task; details, the
 * question and the error on demand. Actions sit on each row on hover and in
 * JupyterLab's context menu (see index.ts).
 *
 * The widget owns the view state (expanded rows, collapsed sections, how many
 * recent rows are shown) and re-renders on `model.changed`, which fires at most
 * once per animation frame. Rows are memoised on the task object, which the
 * model replaces only when the task changes, so a burst of progress events
 * re-renders only those rows.
 */
import { Notification } from '@jupyterlab/apputils';
import {
  ReactWidget,
  caretDownIcon,
  caretRightIcon,
  listIcon,
  notebookIcon,
  refreshIcon,
  stopIcon
} from '@jupyterlab/ui-components';
import { Message } from '@lumino/messaging';
import * as React from 'react';

import { TasksAPI, TasksConnection } from './connection';
import { VirtualRows } from './components/VirtualRows';
import { tasksIcon } from './icons';
import { formatAgo, formatBytes, formatDuration, localTime, shortId } from './format';
import { stripAnsi } from './logview';
import { DEFAULT_FILTER, ISections, ITaskFilter, TasksModel, pendingQuestion } from './model';
import { IArtifact, ITask, isActive } from './types';

/** A one-line row's height in px (`--jp-tasks-row-height`); measured rows may differ. */
const ROW_HEIGHT = 24;
/** Longest params/result JSON shown inline. */
const MAX_JSON_CHARS = 4000;
/** Finished rows say "5m ago": re-rendering them twice a minute is enough. */
const RELATIVE_TICK_MS = 30_000;

export type SectionName = keyof ISections;

const SECTIONS: { name: SectionName; title: string }[] = [
  { name: 'needs', title: 'Needs you' },
  { name: 'running', title: 'Running' },
  { name: 'queued', title: 'Queued' },
  { name: 'recent', title: 'Recent' }
];

/** The one status control: each choice is a set of statuses (or "needs you"). */
export const STATUS_CHOICES: {
  value: string;
  label: string;
  statuses: string[];
  needsMe?: boolean;
}[] = [
  { value: '', label: 'All statuses', statuses: [] },
  { value: 'needs', label: 'Needs you', statuses: [], needsMe: true },
  { value: 'active', label: 'Active', statuses: ['running', 'queued'] },
  { value: 'running', label: 'Running', statuses: ['running'] },
  { value: 'queued', label: 'Queued', statuses: ['queued'] },
  { value: 'succeeded', label: 'Succeeded', statuses: ['succeeded'] },
  {
    value: 'problems',
    label: 'Failed, timeout, oom, interrupted',
    statuses: ['failed', 'timeout', 'oom', 'interrupted']
  },
  { value: 'failed', label: 'Failed', statuses: ['failed'] },
  { value: 'timeout', label: 'Timeout', statuses: ['timeout'] },
  { value: 'cancelled', label: 'Cancelled', statuses: ['cancelled'] },
  { value: 'interrupted', label: 'Interrupted', statuses: ['interrupted'] },
  { value: 'oom', label: 'Out of memory', statuses: ['oom'] }
];

/** The value of the status control that matches a filter ('' when none does). */
export function statusChoice(filter: ITaskFilter): string {
  const statuses = Array.from(filter.statuses).sort().join();
  const choice = STATUS_CHOICES.find(
    c => !!c.needsMe === filter.needsMe && [...c.statuses].sort().join() === statuses
  );
  return choice?.value ?? '';
}

export class TasksPanel extends ReactWidget {
  constructor(options: TasksPanel.IOptions) {
    super();
    this._connection = options.connection;
    this._openLog = options.openLog;
    this.id = 'jupyter-tasks-panel';
    this.addClass('jp-TasksPanel');
    this.node.dataset.testid = 'tasks-panel';
    this.title.icon = tasksIcon;
    this.title.caption = 'Tasks';
    this._connection.model.changed.connect(this._refresh, this);
    this._connection.stream.statusChanged.connect(this._refresh, this);
    this._connection.errorChanged.connect(this._refresh, this);
  }

  /**
   * Show a task: clear filters that hide it, open its section, scroll to it;
   * expand it, or with `question` put the focus on its first answer.
   */
  reveal(id: string, options: { question?: boolean } = {}): void {
    const model = this._connection.model;
    const task = model.get(id);
    if (task && !model.visible.some(visible => visible.id === id)) {
      model.setFilter(DEFAULT_FILTER);
      this._filterGeneration++;
    }
    if (task) {
      this._collapsed.delete(sectionOf(model, task));
    }
    if (!options.question || !task || !pendingQuestion(task)) {
      this._expanded.add(id);
    }
    this._revealed = { id, nonce: this._revealed.nonce + 1, question: !!options.question };
    this.update();
  }

  /** Ask the server to cancel; errors become a notification. */
  cancel(id: string): void {
    this._act('cancel the task', () => this._connection.cancel(id));
  }

  /** Run again as a new task and reveal it. */
  rerun(id: string): void {
    this._act('rerun the task', async () => {
      const task = await this._connection.rerun(id);
      this.reveal(task.id);
    });
  }

  dispose(): void {
    clearInterval(this._ticker);
    super.dispose();
  }

  protected onAfterAttach(msg: Message): void {
    super.onAfterAttach(msg);
    // Elapsed times of running tasks move even when no event arrives.
    this._ticker = setInterval(() => {
      const model = this._connection.model;
      if (model.count('running') > 0 || model.count('queued') > 0) {
        this.update();
      } else if (Math.floor(Date.now() / RELATIVE_TICK_MS) !== this._relativeTick) {
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
    const sections = model.sections;
    const total = model.visible.length;
    const now = Date.now();
    this._relativeTick = Math.floor(now / RELATIVE_TICK_MS);
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
        <div className="jp-TasksPanel-list" data-testid="tasks-list">
          {SECTIONS.map(({ name, title }) => {
            const tasks = sections[name];
            if (tasks.length === 0) {
              return null;
            }
            const collapsed = this._collapsed.has(name);
            const Caret = collapsed ? caretRightIcon : caretDownIcon;
            return (
              <section key={name} className="jp-TasksPanel-section" data-section={name}>
                <button
                  className="jp-TasksPanel-sectionHeader"
                  aria-expanded={!collapsed}
                  onClick={() => this._toggleSection(name)}
                >
                  <Caret.react tag="span" className="jp-TasksPanel-caret" />
                  <span className="jp-TasksPanel-sectionTitle">{title}</span>
                  <span className="jp-TasksPanel-sectionCount">{tasks.length}</span>
                </button>
                {!collapsed && (
                  // only the rows in view are in the DOM: hundreds of progressing
                  // tasks cost what the ~40 visible ones cost
                  <VirtualRows
                    className="jp-TasksPanel-rows"
                    items={tasks}
                    rowHeight={this._rowHeight()}
                    scrollerSelector=".jp-TasksPanel-list"
                    revealId={this._revealed.id}
                    revealNonce={this._revealed.nonce}
                    renderItem={task => (
                      <TaskRow
                        key={task.id}
                        task={task}
                        // Active rows follow the clock; finished ones say "5m ago".
                        now={isActive(task) ? now : this._relativeTick * RELATIVE_TICK_MS}
                        expanded={this._expanded.has(task.id)}
                        position={queueText(model, task)}
                        needsMe={name === 'needs'}
                        notebook={model.notebookPath(task)}
                        revealNonce={task.id === this._revealed.id ? this._revealed.nonce : 0}
                        focusQuestion={task.id === this._revealed.id && this._revealed.question}
                        api={connection.api}
                        actions={this._actions}
                      />
                    )}
                  />
                )}
              </section>
            );
          })}
          {total === 0 && (
            <div className="jp-TasksPanel-empty">
              {model.size === 0 ? 'No tasks yet.' : 'No task matches the filters.'}
            </div>
          )}
          {connection.hasOlder && (
            <button
              className="jp-TasksPanel-older jp-TasksPanel-link"
              onClick={() => void connection.loadOlder().then(() => this.update())}
            >
              Load older tasks
            </button>
          )}
        </div>
      </>
    );
  }

  private _renderFilters(): JSX.Element {
    const model = this._connection.model;
    const filter = model.filter;
    const me = model.identity?.owner ?? null;
    const others = model.owners.filter(owner => owner !== me);
    const ownerValue = filter.owner === null ? '' : filter.owner === me ? '\u0000me' : filter.owner;
    const choice = statusChoice(filter);
    const notebook = model.currentNotebook;
    // The search input is uncontrolled (renders lag input by a frame, which would
    // make a controlled one jump); a new key remounts it when `reveal` resets.
    const key = this._filterGeneration;
    return (
      <div className="jp-TasksPanel-filters">
        <input
          key={`search-${key}`}
          className="jp-TasksPanel-search jp-mod-styled"
          type="search"
          placeholder="Search"
          title="Search label, name or id"
          aria-label="Search tasks"
          defaultValue={filter.search}
          onChange={event => model.setFilter({ search: event.currentTarget.value })}
        />
        <button
          className={`jp-TasksPanel-thisNotebook${filter.thisNotebook ? ' jp-mod-active' : ''}`}
          aria-pressed={filter.thisNotebook}
          title={
            notebook
              ? `Only tasks started from ${notebook}`
              : 'Only tasks of the current notebook (none focused yet)'
          }
          onClick={() => model.setFilter({ thisNotebook: !filter.thisNotebook })}
        >
          <notebookIcon.react tag="span" className="jp-TasksPanel-buttonIcon" />
        </button>
        <select
          className="jp-TasksPanel-statusFilter jp-mod-styled"
          aria-label="Filter by status"
          title="Filter by status"
          value={choice}
          onChange={event => {
            const picked = STATUS_CHOICES.find(c => c.value === event.currentTarget.value)!;
            model.setFilter({ statuses: new Set(picked.statuses), needsMe: !!picked.needsMe });
          }}
        >
          {STATUS_CHOICES.map(c => (
            <option key={c.value} value={c.value}>
              {c.label} ({choiceCount(model, c)})
            </option>
          ))}
        </select>
        <select
          className="jp-TasksPanel-ownerFilter jp-mod-styled"
          aria-label="Filter by owner"
          title="Filter by owner"
          value={ownerValue}
          onChange={event => {
            const value = event.currentTarget.value;
            model.setFilter({ owner: value === '' ? null : value === '\u0000me' ? me : value });
          }}
        >
          <option value="">Everyone</option>
          {me !== null && <option value={'\u0000me'}>Me ({me})</option>}
          {others.map(owner => (
            <option key={owner} value={owner}>
              {owner}
            </option>
          ))}
        </select>
      </div>
    );
  }

  private _toggleSection(name: SectionName): void {
    if (!this._collapsed.delete(name)) {
      this._collapsed.add(name);
    }
    this.update();
  }

  private _refresh(): void {
    this.update();
  }

  /** The one-line row height the stylesheet gives (read once, after attach). */
  private _rowHeight(): number {
    if (!this._rowHeightPx && this.isAttached) {
      const value = getComputedStyle(this.node).getPropertyValue('--jp-tasks-row-height');
      this._rowHeightPx = parseFloat(value) || 0;
    }
    return this._rowHeightPx || ROW_HEIGHT;
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
    cancel: (id: string) => this.cancel(id),
    rerun: (id: string) => this.rerun(id),
    confirm: (id: string, answer: string) =>
      this._act('send the answer', () => this._connection.confirm(id, answer)),
    openLog: (id: string) => this._openLog(id),
    reveal: (id: string) => this.reveal(id),
    takeReveal: (nonce: number) => {
      if (nonce <= this._revealTaken) {
        return false;
      }
      this._revealTaken = nonce;
      return true;
    }
  };

  private _connection: TasksConnection;
  private _openLog: (id: string) => void;
  private _expanded = new Set<string>();
  private _collapsed = new Set<SectionName>();
  private _revealed: { id: string | null; nonce: number; question: boolean } = {
    id: null,
    nonce: 0,
    question: false
  };
  private _rowHeightPx = 0;
  private _revealTaken = 0;
  private _filterGeneration = 0;
  private _relativeTick = 0;
  private _stale = false;
  private _ticker: ReturnType<typeof setInterval> | undefined;
}

export namespace TasksPanel {
  export interface IOptions {
    connection: TasksConnection;
    openLog: (id: string) => void;
  }
}

const CONNECTION_LABELS = {
  open: 'live',
  connecting: 'connecting…',
  closed: 'offline, retrying…'
};

function sectionOf(model: TasksModel, task: ITask): SectionName {
  if (model.needsMe(task)) {
    return 'needs';
  }
  return task.status === 'running' ? 'running' : task.status === 'queued' ? 'queued' : 'recent';
}

function choiceCount(model: TasksModel, choice: (typeof STATUS_CHOICES)[number]): number {
  if (choice.needsMe) {
    return model.waitingForMe.length;
  }
  if (choice.statuses.length === 0) {
    return model.size;
  }
  return choice.statuses.reduce((sum, status) => sum + model.count(status), 0);
}

function queueText(model: TasksModel, task: ITask): string | null {
  const position = model.queuePosition(task);
  if (!position) {
    return null;
  }
  return `#${position.position}`;
}

interface IRowActions {
  toggle(id: string): void;
  cancel(id: string): void;
  rerun(id: string): void;
  confirm(id: string, answer: string): void;
  openLog(id: string): void;
  reveal(id: string): void;
  /** True once per reveal: the row that mounts for it scrolls and focuses. */
  takeReveal(nonce: number): boolean;
}

interface IRowProps {
  task: ITask;
  /** Clock for the times; finished rows get a coarse one (see RELATIVE_TICK_MS). */
  now: number;
  expanded: boolean;
  /** "#2" for a queued task. */
  position: string | null;
  /** In the "Needs you" section: the question shows under the line. */
  needsMe: boolean;
  /** The notebook relative to the server root. */
  notebook: string | null;
  /** Changes each time this row is revealed, to scroll it into view again. */
  revealNonce: number;
  focusQuestion: boolean;
  api: TasksAPI;
  actions: IRowActions;
}

/** What the row's icon shows: the status, or a state within it. */
export function rowLook(task: ITask): string {
  if (isActive(task) && task.cancel_requested) {
    return 'cancelling';
  }
  if (pendingQuestion(task)) {
    return 'question';
  }
  return task.status;
}

const LOOK_TEXT: Record<string, string> = {
  cancelling: 'cancelling',
  question: 'waiting for an answer'
};

const TaskRow = React.memo(function TaskRow(props: IRowProps): JSX.Element {
  const { task, actions, expanded } = props;
  const ref = React.useRef<HTMLLIElement>(null);
  React.useEffect(() => {
    if (props.revealNonce > 0 && actions.takeReveal(props.revealNonce)) {
      ref.current?.scrollIntoView({ block: 'nearest' });
      if (props.focusQuestion) {
        ref.current?.querySelector<HTMLElement>('.jp-TasksPanel-answer')?.focus();
      }
    }
  }, [props.revealNonce]);

  const active = isActive(task);
  const look = rowLook(task);
  const question = pendingQuestion(task);
  const time = timeText(task, props.now);
  const label = task.label || task.name || task.kind;
  const stateText = LOOK_TEXT[look] ?? task.status;
  const title = [
    `${label} — ${stateText}`,
    task.error && task.status !== 'cancelled' ? `${task.error.type}: ${task.error.message}` : '',
    `id ${shortId(task.id)}`
  ]
    .filter(Boolean)
    .join('\n');
  const stop = (event: React.SyntheticEvent) => event.stopPropagation();
  return (
    <li
      ref={ref}
      className={`jp-TasksPanel-row${props.revealNonce > 0 ? ' jp-mod-revealed' : ''}`}
      data-task-id={task.id}
      data-status={task.status}
      data-look={look}
      data-testid="task-row"
    >
      <div
        className="jp-TasksPanel-rowHeader"
        role="button"
        tabIndex={0}
        title={title}
        aria-expanded={expanded}
        onClick={() => actions.toggle(task.id)}
        onKeyDown={event => {
          if (event.key === 'Enter' || event.key === ' ') {
            event.preventDefault();
            actions.toggle(task.id);
          }
        }}
      >
        <span
          className="jp-TasksPanel-status"
          data-status={task.status}
          data-look={look}
          aria-label={stateText}
          role="img"
        />
        <span className="jp-TasksPanel-label">{label}</span>
        {props.position && (
          <span
            className="jp-TasksPanel-queuePos"
            title={`position ${props.position.slice(1)} in queue ${task.queue ?? 'default'}`}
          >
            {props.position}
          </span>
        )}
        {task.status === 'queued' && (task.priority ?? 0) !== 0 && (
          <span className="jp-TasksPanel-priority" title={`priority ${task.priority}`}>
            p{task.priority}
          </span>
        )}
        {active && task.progress && <Progress task={task} now={props.now} />}
        {time && (
          <span className="jp-TasksPanel-time" title={time.title}>
            {time.text}
          </span>
        )}
        <span className="jp-TasksPanel-actions" onClick={stop} onKeyDown={stop}>
          {active ? (
            <button
              className="jp-TasksPanel-action jp-TasksPanel-cancel"
              title={look === 'cancelling' ? 'Cancelling…' : 'Cancel'}
              aria-label="Cancel"
              disabled={look === 'cancelling'}
              onClick={() => actions.cancel(task.id)}
            >
              <stopIcon.react tag="span" className="jp-TasksPanel-buttonIcon" />
            </button>
          ) : (
            <button
              className="jp-TasksPanel-action jp-TasksPanel-rerun"
              title="Rerun"
              aria-label="Rerun"
              onClick={() => actions.rerun(task.id)}
            >
              <refreshIcon.react tag="span" className="jp-TasksPanel-buttonIcon" />
            </button>
          )}
          <button
            className="jp-TasksPanel-action jp-TasksPanel-log"
            title="Open log"
            aria-label="Open log"
            onClick={() => actions.openLog(task.id)}
          >
            <listIcon.react tag="span" className="jp-TasksPanel-buttonIcon" />
          </button>
        </span>
      </div>
      {question && props.needsMe && (
        <Confirmation
          prompt={question.prompt}
          choices={question.choices}
          onAnswer={answer => actions.confirm(task.id, answer)}
        />
      )}
      {expanded && (
        <Details task={task} notebook={props.notebook} api={props.api} actions={actions} />
      )}
    </li>
  );
});

/** Inline progress: a short bar and the percent; counts, message and ETA in the tooltip. */
function Progress(props: { task: ITask; now: number }): JSX.Element {
  const { current, total, message } = props.task.progress!;
  const known = typeof total === 'number' && total > 0 && typeof current === 'number';
  const fraction = known ? Math.min(1, Math.max(0, current! / total!)) : 0;
  const percent = Math.floor(fraction * 100);
  const eta = known ? etaText(props.task, fraction, props.now) : null;
  const tip = [
    known ? `${current} of ${total}` : current != null ? `${current} done` : 'working',
    eta ? `about ${eta} left` : '',
    message ?? ''
  ]
    .filter(Boolean)
    .join(' · ');
  return (
    <span
      className={`jp-TasksPanel-progress${known ? '' : ' jp-mod-indeterminate'}`}
      role="progressbar"
      title={tip}
      aria-valuemin={0}
      aria-valuemax={known ? total! : undefined}
      aria-valuenow={known ? current! : undefined}
      aria-valuetext={tip}
    >
      <span className="jp-TasksPanel-progressTrack">
        <span className="jp-TasksPanel-progressBar" style={{ width: `${fraction * 100}%` }} />
      </span>
      <span className="jp-TasksPanel-progressText">{known ? `${percent}%` : current ?? ''}</span>
    </span>
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

function Details(props: {
  task: ITask;
  notebook: string | null;
  api: TasksAPI;
  actions: IRowActions;
}): JSX.Element {
  const { task, actions } = props;
  const traceback = task.error?.traceback;
  const took = isActive(task) ? null : durationMs(task);
  return (
    <div className="jp-TasksPanel-details">
      {task.error && task.status !== 'cancelled' && (
        // a cancel is someone's decision, not a failure: the status says it
        <div className="jp-TasksPanel-error">
          {task.error.type}: {task.error.message}
        </div>
      )}
      <dl className="jp-TasksPanel-fields">
        <dt>id</dt>
        <dd className="jp-TasksPanel-id" title={task.id}>
          {shortId(task.id)}
        </dd>
        <dt>status</dt>
        <dd>
          {rowLook(task) === 'cancelling' ? 'cancelling' : task.status}
          {took !== null ? ` · took ${formatDuration(took)}` : ''}
        </dd>
        {task.owner && (
          <>
            <dt>owner</dt>
            <dd className="jp-TasksPanel-owner">{task.owner}</dd>
          </>
        )}
        <dt>from</dt>
        <dd className="jp-TasksPanel-origin" title={task.origin?.notebook ?? undefined}>
          {props.notebook ?? task.origin?.type ?? ''}
        </dd>
        <dt>kind</dt>
        <dd>
          {task.kind}
          {task.name ? ` · ${task.name}` : ''}
        </dd>
        {task.queue && (
          <>
            <dt>queue</dt>
            <dd>
              {task.queue}
              {task.priority ? ` · priority ${task.priority}` : ''}
            </dd>
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
                title={task.parent_id}
                onClick={() => actions.reveal(task.parent_id!)}
              >
                {shortId(task.parent_id)}
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

/** Milliseconds from start to end (or to now while running); null before it started. */
function durationMs(task: ITask, now: number = Date.now()): number | null {
  const start = task.started_at ? Date.parse(task.started_at) : NaN;
  if (Number.isNaN(start)) {
    return null;
  }
  const end = task.finished_at ? Date.parse(task.finished_at) : now;
  return Number.isNaN(end) || end < start ? null : end - start;
}

/**
 * The row's time: elapsed while running, waiting time while queued, and how long
 * ago it ended once finished (its duration in the tooltip).
 */
export function timeText(task: ITask, now: number): { text: string; title: string } | null {
  if (task.status === 'running') {
    const elapsed = durationMs(task, now);
    return elapsed === null
      ? null
      : { text: formatDuration(elapsed), title: `running for ${formatDuration(elapsed)}` };
  }
  if (task.status === 'queued') {
    const created = task.created_at ? Date.parse(task.created_at) : NaN;
    if (Number.isNaN(created)) {
      return null;
    }
    const waited = formatDuration(Math.max(0, now - created));
    return { text: waited, title: `queued for ${waited}` };
  }
  const end = task.finished_at ? Date.parse(task.finished_at) : NaN;
  if (Number.isNaN(end)) {
    return null;
  }
  const took = durationMs(task);
  return {
    text: formatAgo(now - end, end),
    title: `ended ${localTime(task.finished_at)}${took !== null ? `, took ${formatDuration(took)}` : ''}`
  };
}

function etaText(task: ITask, fraction: number, now: number): string | null {
  const elapsed = durationMs(task, now);
  if (elapsed === null || fraction <= 0 || fraction >= 1 || elapsed < 1000) {
    return null;
  }
  return formatDuration((elapsed * (1 - fraction)) / fraction);
}

// kept for importers of the panel's helpers
export { formatAgo, formatDuration } from './format';
