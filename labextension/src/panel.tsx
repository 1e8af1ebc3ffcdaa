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
import { Dialog, Notification, showDialog } from '@jupyterlab/apputils';
import {
  ReactWidget,
  caretDownIcon,
  caretRightIcon,
  notebookIcon
} from '@jupyterlab/ui-components';
import { Message } from '@lumino/messaging';
import * as React from 'react';

import { TasksConnection } from './connection';
import { errorText, notRerunText } from './format';
import { IScheduleActions, ScheduleRow } from './components/ScheduleRow';
import { IRowActions } from './components/rowLook';
import { TaskRow } from './components/TaskRow';
import { VirtualRows } from './components/VirtualRows';
import { tasksIcon } from './icons';
import { DEFAULT_FILTER, ISections, ITaskFilter, TasksModel, pendingQuestion } from './model';
import { ITask, ITaskConfirmation, isActive } from './types';

/** A one-line row's height in px (`--jp-tasks-row-height`); measured rows may differ. */
const ROW_HEIGHT = 24;
/** Finished rows say "5m ago": re-rendering them twice a minute is enough. */
const RELATIVE_TICK_MS = 30_000;
/** How long the search box waits after the last key before asking the server. */
const SEARCH_DELAY_MS = 300;

export type SectionName = keyof ISections;
/** The collapsible parts of the list: the task sections and the schedules. */
type PartName = SectionName | 'schedules';

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
    this._editSchedule = options.editSchedule ?? (() => undefined);
    this.id = 'jupyter-tasks-panel';
    this.addClass('jp-TasksPanel');
    this.node.dataset.testid = 'tasks-panel';
    this.title.icon = tasksIcon;
    this.title.caption = 'Tasks';
    this._connection.model.changed.connect(this._refresh, this);
    this._connection.stream.statusChanged.connect(this._refresh, this);
    this._connection.errorChanged.connect(this._refresh, this);
    this._connection.schedules.changed.connect(this._refresh, this);
    document.addEventListener('focusin', this._onFocusIn, true);
    this.node.addEventListener('focusout', this._onFocusOut);
  }

  /** Show a schedule: open the Schedules section, scroll to its line and mark it. */
  revealSchedule(id: string): void {
    this._collapsed.delete('schedules');
    this._revealedSchedule = id;
    this.update();
  }

  /** List only the firings of a schedule (read from the server too: they may be old). */
  showFirings(id: string): void {
    const model = this._connection.model;
    model.setFilter({ ...DEFAULT_FILTER, scheduleId: id });
    this._filterGeneration++;
    this._revealedSchedule = id;
    this._act('read the firings', () => this._connection.loadFirings(id));
  }

  /** Pause or resume a schedule; errors become a notification. */
  pauseSchedule(id: string, paused: boolean): void {
    this._act(paused ? 'pause the schedule' : 'resume the schedule', () =>
      this._connection.updateSchedule(id, paused ? 'pause' : 'resume')
    );
  }

  /** Fire a schedule now and reveal the new task (or the run its job's key had). */
  runSchedule(id: string): void {
    this._act('run the schedule', async () => {
      const task = await this._connection.runSchedule(id);
      const notRun = notRerunText(task, 'run now');
      if (notRun !== null) {
        Notification.info(notRun, { autoClose: 8000 });
      }
      this.reveal(task.id);
    });
  }

  /** Delete a schedule once the user confirms (its past firings stay). */
  deleteSchedule(id: string): void {
    const schedule = this._connection.schedules.get(id);
    const name = schedule?.name ?? id;
    this._act('delete the schedule', async () => {
      const answer = await showDialog({
        title: 'Delete schedule?',
        body: `"${name}" will not fire again. The tasks it already ran stay in the list.`,
        buttons: [Dialog.cancelButton(), Dialog.warnButton({ label: 'Delete' })]
      });
      if (!answer.button.accept) {
        return;
      }
      await this._connection.deleteSchedule(id);
      if (this._connection.model.filter.scheduleId === id) {
        this._connection.model.setFilter({ scheduleId: null });
      }
    });
  }

  /** Open the schedule's dialog to edit it. */
  editSchedule(id: string): void {
    this._editSchedule(id);
  }

  /**
   * Show a task: clear filters that hide it, open its section, scroll to it;
   * expand it, or with `question` put the focus on its first answer.
   */
  reveal(id: string, options: { question?: boolean } = {}): void {
    const model = this._connection.model;
    const task = model.get(id);
    if (!task) {
      // older than the loaded pages (a rerun's parent, a notification's task): read it
      void this._connection.ensureTask(id).then(found => {
        if (found && !this.isDisposed) {
          this.reveal(id, options);
        }
      });
      return;
    }
    if (!model.visible.some(visible => visible.id === id)) {
      model.setFilter(DEFAULT_FILTER);
      this._filterGeneration++;
    }
    this._collapsed.delete(sectionOf(model, task));
    if (!options.question || !pendingQuestion(task)) {
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
      const notRerun = notRerunText(task);
      if (notRerun !== null) {
        Notification.info(notRerun, { autoClose: 8000 });
      }
      this.reveal(task.id);
    });
  }

  dispose(): void {
    document.removeEventListener('focusin', this._onFocusIn, true);
    clearInterval(this._ticker);
    if (this._searchTimer !== null) {
      window.clearTimeout(this._searchTimer);
    }
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
          {this._renderSchedules(now)}
          {SECTIONS.map(({ name, title }) => {
            const tasks = sections[name];
            if (tasks.length === 0) {
              return null;
            }
            const collapsed = this._collapsed.has(name);
            const total = model.sectionTotal(name);
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
                  {total !== null && (
                    <span
                      className="jp-TasksPanel-sectionTotal"
                      title="The newest tasks are loaded: 'Load older tasks' at the end of the list brings more"
                    >
                      of {total}
                    </span>
                  )}
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
          {total === 0 && connection.error === null && (
            <div className="jp-TasksPanel-empty">
              {model.filter.scheduleId !== null
                ? 'This schedule has not fired yet.'
                : model.size === 0
                  ? 'No tasks yet.'
                  : 'No task matches the filters.'}
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

  private _renderSchedules(now: number): JSX.Element | null {
    const schedules = this._connection.schedules.all;
    if (schedules.length === 0) {
      return null;
    }
    const collapsed = this._collapsed.has('schedules');
    const Caret = collapsed ? caretRightIcon : caretDownIcon;
    const filtering = this._connection.model.filter.scheduleId;
    return (
      <section className="jp-TasksPanel-section" data-section="schedules">
        <button
          className="jp-TasksPanel-sectionHeader"
          aria-expanded={!collapsed}
          onClick={() => this._toggleSection('schedules')}
        >
          <Caret.react tag="span" className="jp-TasksPanel-caret" />
          <span className="jp-TasksPanel-sectionTitle">Schedules</span>
          <span className="jp-TasksPanel-sectionCount">{schedules.length}</span>
        </button>
        {!collapsed && (
          <ul className="jp-TasksPanel-rows">
            {schedules.map(schedule => (
              <ScheduleRow
                key={schedule.id}
                schedule={schedule}
                now={now}
                filtering={filtering === schedule.id}
                revealed={this._revealedSchedule === schedule.id}
                actions={this._scheduleActions}
              />
            ))}
          </ul>
        )}
      </section>
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
    const firingsOf = filter.scheduleId;
    const firingsName = firingsOf
      ? (this._connection.schedules.get(firingsOf)?.name ?? firingsOf.slice(-10))
      : null;
    return (
      <div className="jp-TasksPanel-filters">
        {firingsOf !== null && (
          <span className="jp-TasksPanel-firingsFilter" data-schedule-id={firingsOf}>
            <span className="jp-TasksPanel-firingsText" title={`Tasks fired by ${firingsName}`}>
              Firings of {firingsName}
            </span>
            <button
              className="jp-TasksPanel-action jp-TasksPanel-clearFirings"
              title="Show every task"
              aria-label="Show every task"
              onClick={() => model.setFilter({ scheduleId: null })}
            >
              ×
            </button>
          </span>
        )}
        <input
          key={`search-${key}`}
          className="jp-TasksPanel-search jp-mod-styled"
          type="search"
          placeholder="Search"
          title="Search label, name or id"
          aria-label="Search tasks"
          defaultValue={filter.search}
          onChange={event => this._search(event.currentTarget.value)}
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
            if (picked.statuses.length > 0) {
              // the loaded pages may hold none of them (or not be loaded yet, so whether
              // older pages exist is not known): the server's newest do
              this._act('read the tasks with that status', () =>
                this._connection.loadStatuses(picked.statuses)
              );
            }
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

  private _toggleSection(name: PartName): void {
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

  /**
   * Filter by the search box at once, and read the server's matches a moment after
   * the typing stops: the loaded pages hold only the newest tasks.
   */
  private _search(text: string): void {
    this._connection.model.setFilter({ search: text });
    if (this._searchTimer !== null) {
      window.clearTimeout(this._searchTimer);
    }
    this._searchTimer = window.setTimeout(() => {
      this._searchTimer = null;
      const needle = text.trim();
      if (needle && !this.isDisposed) {
        this._act('search the tasks', () => this._connection.loadSearch(needle));
      }
    }, SEARCH_DELAY_MS);
  }

  private _searchTimer: number | null = null;

  private _act(what: string, action: () => Promise<unknown>): void {
    action().catch((error: unknown) => {
      Notification.error(`Could not ${what}: ${errorText(error)}`, {
        autoClose: 8000
      });
    });
  }

  /** The task acted on from its line: its line takes the focus back if it is lost. */
  private _keepFocusOn(id: string): void {
    this._focusTask = this.node.contains(document.activeElement) ? id : null;
  }

  /** The focus went somewhere else: the line acted on no longer keeps it. */
  private _onFocusIn = (event: FocusEvent): void => {
    const target = event.target as HTMLElement | null;
    if (target?.closest?.('.jp-TasksPanel-row')?.getAttribute('data-task-id') !== this._focusTask) {
      this._focusTask = null;
    }
  };

  /**
   * The focus left for nothing (a click on a blank part of the page): the line lets it be.
   * A button disabled or a line removed loses it too, and then the line takes it back.
   */
  private _onFocusOut = (event: FocusEvent): void => {
    const target = event.target as HTMLButtonElement;
    queueMicrotask(() => {
      if (target.isConnected && !target.disabled && !this.node.contains(document.activeElement)) {
        this._focusTask = null;
      }
    });
  };

  private _focusTask: string | null = null;

  /** Stable callbacks, so memoised rows do not re-render for new closures. */
  private _actions: IRowActions = {
    toggle: (id: string) => {
      if (!this._expanded.delete(id)) {
        this._expanded.add(id);
      }
      this.update();
    },
    cancel: (id: string) => {
      this._keepFocusOn(id);
      this.cancel(id);
    },
    rerun: (id: string) => this.rerun(id),
    confirm: (id: string, answer: string, askedAt?: ITaskConfirmation['asked_at']) => {
      this._keepFocusOn(id);
      this._act('send the answer', () => this._connection.confirm(id, answer, askedAt));
    },
    openLog: (id: string) => this._openLog(id),
    reveal: (id: string) => this.reveal(id),
    showSchedule: (id: string) => this.revealSchedule(id),
    takeReveal: (nonce: number) => {
      if (nonce <= this._revealTaken) {
        return false;
      }
      this._revealTaken = nonce;
      return true;
    },
    keepsFocus: (id: string) => id === this._focusTask
  };

  private _scheduleActions: IScheduleActions = {
    pause: (id: string) => this.pauseSchedule(id, true),
    resume: (id: string) => this.pauseSchedule(id, false),
    run: (id: string) => this.runSchedule(id),
    edit: (id: string) => this.editSchedule(id),
    remove: (id: string) => this.deleteSchedule(id),
    showFirings: (id: string) => this.showFirings(id)
  };

  private _connection: TasksConnection;
  private _openLog: (id: string) => void;
  private _editSchedule: (id: string) => void;
  private _revealedSchedule: string | null = null;
  private _expanded = new Set<string>();
  private _collapsed = new Set<PartName>();
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
    /** Opens the schedule dialog on an existing schedule. */
    editSchedule?: (id: string) => void;
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
    return model.totalSize;
  }
  return choice.statuses.reduce((sum, status) => sum + model.total(status), 0);
}

function queueText(model: TasksModel, task: ITask): string | null {
  const position = model.queuePosition(task);
  if (!position) {
    return null;
  }
  return `#${position.position}`;
}

// kept for importers of the panel's helpers
export { rowLook } from './components/rowLook';
export { timeText } from './time';
export { formatAgo, formatDuration } from './format';
