/**
 * A card that outlives the tab (issue 13).
 *
 * A `%%background` card is an ipywidget in the cell's output. When the notebook
 * tab is closed (or the page reloaded) before the notebook was saved with that
 * output, the reopened cell is empty, although the task still runs and its log
 * holds every line. Cell tasks record the cell that submitted them
 * (`origin.cell_id`, the nbformat cell id, plus `origin.notebook` and
 * `origin.kernel_id`). When a notebook opens, this asks the server for cell
 * tasks, and under each cell whose output does not mention its task it puts a
 * live view of that task: status, progress, elapsed time, the whole log (the
 * lines printed while the tab was closed, then new ones as `task.log` events
 * arrive on the panel's event stream), and the card's actions over the REST API:
 * Cancel while active, the question's answers while it waits for one, Rerun once
 * it ended (the view then follows the new task, as the card does), the result's
 * repr when it succeeded, and Open log.
 *
 * Which task comes back: the newest of the cell's tasks that is still active,
 * or that ended after the notebook file was last saved (its output was never
 * saved); a task that ended before that save is what the saved file already
 * shows (or what the user cleared), and stays away. The view goes as soon as
 * the cell's outputs change (the cell is run again).
 *
 * A card saved with the notebook comes back dead once its kernel restarted (or in
 * a new session): its widget's model went with that kernel, and ipywidgets writes
 * "Error displaying widget: model not found" in its place. The saved output still
 * names the task (the card's text form), so that error is hidden and the same live
 * view is shown instead.
 */
import { URLExt } from '@jupyterlab/coreutils';
import { DocumentRegistry, DocumentWidget } from '@jupyterlab/docregistry';
import { ServerConnection } from '@jupyterlab/services';
import { IDisposable } from '@lumino/disposable';
import { ISignal } from '@lumino/signaling';
import { PanelLayout, Widget } from '@lumino/widgets';

import { TasksConnection } from './connection';
import { errorText, notRerunText, taskLabel } from './format';
import { longIntegerText, parseJson, valueText } from './json';
import { stripAnsi } from './logview';
import { pendingQuestion } from './model';
import { ILogEntry, ITask, ITaskEvent, ITaskPage, isActive } from './types';

/** Active cell tasks read at once (the server's maximum page). */
const ACTIVE_LIMIT = 500;
/** Recently created cell tasks read to find ones that ended after the last save. */
const RECENT_LIMIT = 200;
const UNSAVED_NOTE =
  'Restored: this output was not saved with the notebook; shown live from the task.';
const DEAD_CARD_NOTE =
  "The card's widget went with the kernel that ran it; shown live from the task.";
/** Lines kept in a view; older ones are dropped (the log tab has them all). */
const MAX_LINES = 5000;
const POLL_MS = 2000;

/** The parts of JupyterLab's notebook, cell and output models used here. */
interface IOutputsLike {
  readonly length: number;
  get(index: number): { toJSON(): unknown };
  readonly changed: ISignal<unknown, unknown>;
}

interface ICellLike extends Widget {
  readonly model: { readonly id: string; readonly type: string; readonly outputs?: IOutputsLike };
}

interface INotebookLike extends Widget {
  readonly widgets: ReadonlyArray<ICellLike>;
}

type NotebookPanelLike = DocumentWidget<INotebookLike, DocumentRegistry.IModel>;

/**
 * Register the restore extension on JupyterLab's notebook widgets.
 *
 * @param openLog - opens a task's log tab.
 */
export function setupCardRestore(
  docRegistry: DocumentRegistry,
  connection: TasksConnection,
  openLog: (id: string) => void
): IDisposable {
  installStyle();
  const restorer = new Restorer(connection, openLog);
  return docRegistry.addWidgetExtension('Notebook', {
    createNew: (panel: Widget, context: DocumentRegistry.IContext<DocumentRegistry.IModel>) => {
      void restorer.attach(panel as NotebookPanelLike, context);
    }
  });
}

class Restorer {
  constructor(
    readonly connection: TasksConnection,
    readonly openLog: (id: string) => void
  ) {}

  async attach(
    panel: NotebookPanelLike,
    context: DocumentRegistry.IContext<DocumentRegistry.IModel>
  ): Promise<void> {
    try {
      await context.ready;
      if (panel.isDisposed) {
        return;
      }
      const savedAt = Date.parse(context.contentsModel?.last_modified ?? '');
      const [tasks, rootDir] = await Promise.all([this._cellTasks(), this._rootDir()]);
      if (panel.isDisposed) {
        return;
      }
      const path = normalizePath(context.localPath);
      const kernelId = context.sessionContext.session?.kernel?.id ?? null;
      // the newest task of each cell of this notebook that may have lost its output
      const byCell = new Map<string, ITask>();
      for (const task of tasks) {
        const cellId = task.origin?.cell_id;
        if (typeof cellId !== 'string' || !fromThisNotebook(task, path, rootDir, kernelId)) {
          continue;
        }
        const known = byCell.get(cellId);
        if (!known || task.id > known.id) {
          byCell.set(cellId, task);
        }
      }
      for (const cell of panel.content.widgets) {
        if (cell.model.outputs && cardOutputs(cell.model.outputs).size > 0) {
          this._watchDeadCards(cell);
        }
        const task = byCell.get(cell.model.id);
        if (!task || !cell.model.outputs || mentions(cell.model.outputs, task.id)) {
          continue;
        }
        if (!isActive(task) && !endedAfter(task, savedAt)) {
          continue;
        }
        this._show(cell, task);
      }
    } catch (error) {
      console.warn('jupyter-tasks: could not restore the cards of this notebook', error);
    }
  }

  /**
   * Watch a cell whose saved output holds cards: a card's widget whose model went
   * with the kernel that ran it (a restart, a new session) is shown by ipywidgets as
   * an error, for good. Once that error appears, it is hidden and the card's task is
   * shown live in its place. A card that renders (its kernel lives on) ends the watch,
   * as does a change of the cell's outputs.
   */
  private _watchDeadCards(cell: ICellLike): void {
    const outputs = cell.model.outputs!;
    // read once (a change of the outputs ends the watch): a look at each mutation of
    // the cell (a keystroke) is then two DOM queries. Not bounded in time: a cell that
    // JupyterLab renders only once scrolled to shows ipywidgets' error only then
    const cards = cardOutputs(outputs);
    let watching = true;
    const stop = (): void => {
      if (watching) {
        watching = false;
        observer.disconnect();
        outputs.changed.disconnect(stop);
        cell.disposed.disconnect(stop);
      }
    };
    const look = (): void => {
      if (!watching) {
        return;
      }
      if (cell.node.querySelector('.jupyter-tasks-card')) {
        stop(); // a live card: its widget came back
        return;
      }
      const dead = deadCards(cell, cards);
      if (dead.size > 0) {
        stop();
        for (const [taskId, node] of dead) {
          void this._replaceDeadCard(cell, taskId, node);
        }
      }
    };
    // ipywidgets writes its error only once the notebook's widget state is restored
    const observer = new MutationObserver(look);
    observer.observe(cell.node, { childList: true, subtree: true, characterData: true });
    outputs.changed.connect(stop);
    cell.disposed.connect(stop);
    look();
  }

  private async _replaceDeadCard(
    cell: ICellLike,
    taskId: string,
    dead: HTMLElement
  ): Promise<void> {
    const task = await this.connection.ensureTask(taskId);
    if (!task || cell.isDisposed || !dead.isConnected) {
      return; // a task deleted (or not this user's): ipywidgets' error stays
    }
    dead.classList.add('jp-TasksRestored-deadCard');
    const view = this._show(cell, task, DEAD_CARD_NOTE);
    view?.disposed.connect(() => dead.classList.remove('jp-TasksRestored-deadCard'));
  }

  private _show(cell: ICellLike, task: ITask, note = UNSAVED_NOTE): RestoredTaskView | null {
    const layout = cell.layout;
    if (!(layout instanceof PanelLayout)) {
      return null;
    }
    const view = new RestoredTaskView(this.connection, task, this.openLog, note);
    layout.addWidget(view);
    const outputs = cell.model.outputs!;
    // the cell ran again (or its output was cleared): its own output takes over
    const onOutputs = (): void => view.dispose();
    outputs.changed.connect(onOutputs);
    view.disposed.connect(() => outputs.changed.disconnect(onOutputs));
    return view;
  }

  /** Active cell tasks, and the most recent ones whatever their status. */
  private async _cellTasks(): Promise<ITask[]> {
    const [active, recent] = await Promise.all([
      this._list({ kind: 'cell', status: 'queued,running', limit: String(ACTIVE_LIMIT) }),
      this._list({ kind: 'cell', limit: String(RECENT_LIMIT) })
    ]);
    const seen = new Map<string, ITask>();
    for (const task of [...recent, ...active]) {
      seen.set(task.id, task);
    }
    return [...seen.values()];
  }

  private async _rootDir(): Promise<string | null> {
    if (this._root === undefined) {
      try {
        this._root = (await this.connection.api.me()).root_dir;
      } catch {
        return null; // try again next time; paths are then matched as they are
      }
    }
    return this._root;
  }

  private async _list(query: Record<string, string>): Promise<ITask[]> {
    const settings = this.connection.api.settings;
    const url = URLExt.join(settings.baseUrl, 'api/tasks') + URLExt.objectToQueryString(query);
    const response = await ServerConnection.makeRequest(url, {}, settings);
    if (!response.ok) {
      throw new Error(`GET api/tasks: ${response.status}`);
    }
    return parseJson<ITaskPage>(await response.text()).tasks;
  }

  private _root: string | null | undefined = undefined;
}

/**
 * The live view of one task under its cell: what the card showed, read from the
 * server instead of the kernel's widget.
 */
export class RestoredTaskView extends Widget {
  constructor(
    private readonly _connection: TasksConnection,
    task: ITask,
    openLog: (id: string) => void,
    note: string = UNSAVED_NOTE
  ) {
    super();
    this._task = task;
    this.addClass('jp-TasksRestored');
    this.node.dataset.taskId = task.id;
    this._header = div('jp-TasksRestored-header');
    this._note = div('jp-TasksRestored-note');
    this._note.textContent = note;
    this._question = div('jp-TasksRestored-question');
    this._question.setAttribute('role', 'group');
    this._question.setAttribute('aria-label', 'Question');
    this._output = document.createElement('pre');
    this._output.className = 'jp-TasksRestored-output';
    this._error = div('jp-TasksRestored-error');
    this._result = div('jp-TasksRestored-result');
    this._problem = div('jp-TasksRestored-problem');
    this._problem.setAttribute('role', 'alert');
    const buttons = div('jp-TasksRestored-buttons');
    this._cancel = button('Cancel', 'jp-TasksRestored-cancel', () =>
      this._act('cancel', this._cancel, id => this._connection.cancel(id))
    );
    this._rerun = button('Rerun', 'jp-TasksRestored-rerun', () =>
      this._act('rerun', this._rerun, id => this._connection.rerun(id), true)
    );
    const log = button('Open log', 'jp-TasksRestored-openLog', () => openLog(this._task.id));
    buttons.append(this._cancel, this._rerun, log);
    this.node.append(
      this._header,
      this._note,
      this._question,
      this._output,
      this._result,
      this._error,
      this._problem,
      buttons
    );
    this._connection.eventsApplied.connect(this._onEvent, this);
    this._timer = setInterval(() => this._tick(), 1000);
    this._render();
    void this._fetch();
  }

  get taskId(): string {
    return this._task.id;
  }

  dispose(): void {
    if (this.isDisposed) {
      return;
    }
    clearInterval(this._timer);
    this._connection.eventsApplied.disconnect(this._onEvent, this);
    super.dispose();
  }

  private _onEvent(_: TasksConnection, event: ITaskEvent): void {
    if (event.task_id !== this._task.id) {
      return;
    }
    if (event.task) {
      this._update(event.task);
    }
    if (event.type === 'task.log' || (event.task && !isActive(event.task))) {
      // a terminal event may follow the last lines closely: read once more
      void this._fetch();
    }
  }

  private _update(task: ITask): void {
    if (task.id !== this._task.id) {
      return; // an answer about the task this view showed before a rerun
    }
    this._task = task;
    this._render();
  }

  /**
   * An action over the REST API, its button disabled meanwhile; a refusal (a
   * 4xx's detail) is shown in the view. With `follow`, the answer is a new task
   * (a rerun) and the view shows it from now on, as the kernel's card does.
   */
  private _act(
    what: string,
    control: HTMLButtonElement,
    action: (id: string) => Promise<ITask>,
    follow = false
  ): void {
    control.disabled = true;
    this._problem.textContent = '';
    this.node.setAttribute('aria-busy', 'true');
    action(this._task.id).then(
      reply => {
        if (this.isDisposed) {
          return;
        }
        this.node.removeAttribute('aria-busy');
        // The reply can be older than an event that overtook it (a cancel's reply
        // still "cancelling" after "task.cancelled" came): the connection's model
        // keeps whichever is newer, so show its copy.
        const task = this._connection.model.get(reply.id) ?? reply;
        if (follow) {
          // the reply, not the model's copy, says whether it is the key's run
          this._retarget(task, notRerunText(reply));
        } else {
          this._update(task);
        }
      },
      (error: Error) => {
        if (!this.isDisposed) {
          this.node.removeAttribute('aria-busy');
          this._problem.textContent = `Could not ${what}: ${errorText(error)}`;
          this._render();
        }
      }
    );
  }

  /**
   * Show another task (the rerun, or `notRerun`: the run its key already had): its own
   * log from the start, its own clock.
   */
  private _retarget(task: ITask, notRerun: string | null): void {
    this._task = task;
    this.node.dataset.taskId = task.id;
    this._note.textContent =
      notRerun ?? 'A rerun started from this view; shown live from the task.';
    this._after = 0;
    this._output.replaceChildren();
    this._question.replaceChildren();
    this._questionKey = null;
    this._sinceFetch = 0;
    clearInterval(this._timer);
    this._timer = setInterval(() => this._tick(), 1000);
    this._render();
    void this._fetch();
  }

  /** Elapsed time each second; reads the log while the event stream is down. */
  private _tick(): void {
    this._render();
    if (!isActive(this._task)) {
      clearInterval(this._timer);
      return;
    }
    this._sinceFetch += 1000;
    if (this._connection.stream.status !== 'open' && this._sinceFetch >= POLL_MS) {
      void this._connection.api.get(this._task.id).then(
        task => !this.isDisposed && this._update(task),
        () => undefined
      );
      void this._fetch();
    }
  }

  private _render(): void {
    const task = this._task;
    const status = task.cancel_requested && isActive(task) ? 'cancelling' : task.status;
    this.node.dataset.status = task.status;
    const parts: string[] = [];
    const progress = task.progress;
    if (progress && progress.current != null) {
      const { current, total } = progress;
      // numbers make a percentage; anything else a stored row holds is shown as text
      parts.push(
        typeof current === 'number' && typeof total === 'number' && total > 0
          ? `${Math.round((100 * current) / total)}% (${current}/${total})`
          : valueText(current)
      );
      if (progress.message) {
        parts.push(progress.message);
      }
    }
    const elapsed = elapsedMs(task);
    if (elapsed !== null) {
      parts.push(
        isActive(task) ? `elapsed ${formatDuration(elapsed)}` : `took ${formatDuration(elapsed)}`
      );
    }
    parts.push(task.id.slice(-10));
    this._header.replaceChildren(
      span('jp-TasksRestored-status', status),
      span('jp-TasksRestored-label', taskLabel(task, 'cell')),
      span('jp-TasksRestored-meta', parts.join(' · '))
    );
    (this._header.firstChild as HTMLElement).dataset.status = status;
    const error = task.error && task.status !== 'cancelled' ? task.error : null;
    this._error.textContent = error ? `${error.type}: ${error.message}` : '';
    this._renderResult(task);
    this._renderQuestion(task);
    // not `hidden`: JupyterLab's button style sets `display` and would win
    this._cancel.style.display = isActive(task) ? '' : 'none';
    this._cancel.disabled = !!task.cancel_requested;
    this._rerun.style.display = isActive(task) ? 'none' : '';
    this._rerun.disabled = false;
  }

  /** The value's repr once the task succeeded, as the card shows it. */
  private _renderResult(task: ITask): void {
    const text = task.status === 'succeeded' && task.result != null ? resultText(task.result) : '';
    if (text === this._resultShown) {
      return;
    }
    this._resultShown = text;
    if (!text) {
      this._result.replaceChildren();
      return;
    }
    const value = document.createElement('pre');
    value.className = 'jp-TasksRestored-resultValue';
    value.textContent = text;
    this._result.replaceChildren(span('jp-TasksRestored-resultCaption', 'result'), value);
  }

  /** The pending question with one button per answer (a text field when any answer goes). */
  private _renderQuestion(task: ITask): void {
    const question = pendingQuestion(task);
    const key = question ? `${task.id}\n${question.asked_at ?? ''}\n${question.prompt}` : null;
    if (key === this._questionKey) {
      return; // unchanged: keep what the user is typing
    }
    this._questionKey = key;
    if (!question) {
      this._question.replaceChildren();
      return;
    }
    const prompt = span('jp-TasksRestored-prompt', question.prompt);
    const answer = (text: string, control: HTMLButtonElement): void =>
      this._act('send the answer', control, id =>
        this._connection.confirm(id, text, question.asked_at)
      );
    const choices = question.choices ?? [];
    if (choices.length > 0) {
      const controls = choices.map(choice => {
        const control = button(choice, 'jp-TasksRestored-answer jp-mod-accept', () =>
          answer(choice, control)
        );
        control.dataset.answer = choice;
        return control;
      });
      this._question.replaceChildren(prompt, ...controls);
      return;
    }
    const form = document.createElement('form');
    const input = document.createElement('input');
    input.className = 'jp-TasksRestored-answerText jp-mod-styled';
    input.setAttribute('aria-label', 'Answer');
    const send = button('Send', 'jp-TasksRestored-answer jp-mod-accept', () => undefined);
    send.type = 'submit';
    form.append(input, send);
    form.addEventListener('submit', event => {
      event.preventDefault();
      answer(input.value, send);
    });
    this._question.replaceChildren(prompt, form);
  }

  /** Reads the log until caught up; concurrent calls fold into one more round. */
  private async _fetch(): Promise<void> {
    if (this._fetching) {
      this._again = true;
      return;
    }
    this._fetching = true;
    this._sinceFetch = 0;
    try {
      do {
        this._again = false;
        // a rerun retargets the view mid-read: the old task's pages are dropped and
        // the loop goes on with the new task
        const id = this._task.id;
        const moved = (): boolean => this._task.id !== id;
        const complete = await this._connection.api.readLogsAfter(
          id,
          this._after,
          (entries, next) => {
            if (!moved()) {
              this._append(entries);
              this._after = next;
            }
          },
          () => this.isDisposed || moved()
        );
        if (this.isDisposed || (!complete && !moved())) {
          return;
        }
        this._again ||= moved();
      } while (this._again);
    } catch (error) {
      console.warn('jupyter-tasks: could not read the log of', this._task.id, error);
    } finally {
      this._fetching = false;
    }
  }

  private _append(entries: ILogEntry[]): void {
    if (entries.length === 0) {
      return;
    }
    const node = this._output;
    const following = node.scrollHeight - node.scrollTop - node.clientHeight < 24;
    const fragment = document.createDocumentFragment();
    for (const entry of entries) {
      const line = document.createElement('span');
      line.className = `jp-TasksRestored-${entry.stream === 'stderr' ? 'stderr' : 'stdout'}`;
      line.textContent = stripAnsi(entry.text);
      fragment.appendChild(line);
    }
    node.appendChild(fragment);
    while (node.childElementCount > MAX_LINES) {
      node.firstChild!.remove();
    }
    if (following) {
      node.scrollTop = node.scrollHeight;
    }
  }

  private _task: ITask;
  private _header: HTMLDivElement;
  private _note: HTMLDivElement;
  private _question: HTMLDivElement;
  private _questionKey: string | null = null;
  private _output: HTMLPreElement;
  private _error: HTMLDivElement;
  private _result: HTMLDivElement;
  private _resultShown = '';
  private _problem: HTMLDivElement;
  private _cancel: HTMLButtonElement;
  private _rerun: HTMLButtonElement;
  private _timer: ReturnType<typeof setInterval>;
  private _after = 0;
  private _sinceFetch = 0;
  private _fetching = false;
  private _again = false;
}

/** Whether a task came from this notebook: by path, or by the notebook's own kernel. */
function fromThisNotebook(
  task: ITask,
  path: string,
  rootDir: string | null,
  kernelId: string | null
): boolean {
  const origin = task.origin;
  if (!origin) {
    return false;
  }
  if (kernelId && origin.kernel_id === kernelId) {
    return true;
  }
  const notebook = origin.notebook;
  if (!notebook) {
    return false;
  }
  let relative = notebook;
  const root = (rootDir ?? '').replace(/\/+$/, '');
  if (root && notebook.startsWith(root + '/')) {
    relative = notebook.slice(root.length + 1);
  }
  return normalizePath(relative) === path;
}

function normalizePath(path: string): string {
  return path.replace(/^(\.\/|\/)+/, '');
}

const WIDGET_VIEW = 'application/vnd.jupyter.widget-view+json';
/** A card's text form (its widget's repr, kept as the output's text/plain). */
const CARD_TEXT = /^TaskCard\(.*, id=([A-Za-z0-9_-]+)\)/;

/** The cards among the outputs: output index to the task id its text names. */
function cardOutputs(outputs: IOutputsLike): Map<number, string> {
  const cards = new Map<number, string>();
  for (let i = 0; i < outputs.length; i++) {
    const data = (outputs.get(i).toJSON() as { data?: Record<string, unknown> }).data;
    if (!data || !(WIDGET_VIEW in data)) {
      continue;
    }
    const plain = data['text/plain'];
    const text = Array.isArray(plain) ? plain.join('') : typeof plain === 'string' ? plain : '';
    const match = CARD_TEXT.exec(text);
    if (match) {
      cards.set(i, match[1]);
    }
  }
  return cards;
}

/**
 * The cards ipywidgets could not display ("Error displaying widget: model not
 * found"): task id to the output's node. The output area's children follow the
 * outputs' order.
 */
function deadCards(cell: ICellLike, cards: Map<number, string>): Map<string, HTMLElement> {
  const dead = new Map<string, HTMLElement>();
  const area = cell.node.querySelector('.jp-Cell-outputArea');
  if (!area) {
    return dead;
  }
  for (const [index, taskId] of cards) {
    const child = area.children.item(index);
    if (child instanceof HTMLElement && child.textContent?.includes('Error displaying widget')) {
      dead.set(taskId, child);
    }
  }
  return dead;
}

/** Whether any output of the cell names the task (its card, or the handle's line). */
function mentions(outputs: IOutputsLike, taskId: string): boolean {
  for (let i = 0; i < outputs.length; i++) {
    if (JSON.stringify(outputs.get(i).toJSON()).includes(taskId)) {
      return true;
    }
  }
  return false;
}

function endedAfter(task: ITask, savedAt: number): boolean {
  const end = task.finished_at ? Date.parse(task.finished_at) : NaN;
  return Number.isNaN(savedAt) || Number.isNaN(end) || end > savedAt;
}

/** Characters of a result shown, as the kernel's card cuts its repr. */
const RESULT_CHARS = 2000;

/**
 * The stored (JSON) result as Python prints the value: the card shows the
 * value's repr, so `'text'`, `True`, `None` and `{'a': 1}`, not JSON.
 */
export function resultText(result: unknown): string {
  const text = pythonRepr(result);
  return text.length > RESULT_CHARS ? `${text.slice(0, RESULT_CHARS)}…` : text;
}

function pythonRepr(value: unknown): string {
  if (value === null || value === undefined) {
    return 'None';
  }
  const digits = longIntegerText(value);
  if (digits !== null) {
    return digits;
  }
  if (typeof value === 'boolean') {
    return value ? 'True' : 'False';
  }
  if (typeof value === 'string') {
    // Python prefers single quotes unless the text holds one and no double quote
    const quote = value.includes("'") && !value.includes('"') ? '"' : "'";
    const body = JSON.stringify(value)
      .slice(1, -1)
      .replace(/\\"/g, '"')
      .replace(new RegExp(quote === "'" ? "'" : '"', 'g'), `\\${quote}`);
    return `${quote}${body}${quote}`;
  }
  if (Array.isArray(value)) {
    return `[${value.map(pythonRepr).join(', ')}]`;
  }
  if (typeof value === 'object') {
    const items = Object.entries(value as Record<string, unknown>).map(
      ([key, item]) => `${pythonRepr(key)}: ${pythonRepr(item)}`
    );
    return `{${items.join(', ')}}`;
  }
  return String(value);
}

function elapsedMs(task: ITask): number | null {
  const start = task.started_at ? Date.parse(task.started_at) : NaN;
  if (Number.isNaN(start)) {
    return null;
  }
  const end = task.finished_at ? Date.parse(task.finished_at) : Date.now();
  return Number.isNaN(end) ? null : Math.max(0, end - start);
}

function formatDuration(ms: number): string {
  if (ms < 10_000) {
    return `${(Math.floor(ms / 100) / 10).toFixed(1)}s`;
  }
  const seconds = Math.floor(ms / 1000);
  if (seconds < 3600) {
    return `${Math.floor(seconds / 60)}m ${String(seconds % 60).padStart(2, '0')}s`;
  }
  return `${Math.floor(seconds / 3600)}h ${String(Math.floor(seconds / 60) % 60).padStart(2, '0')}m`;
}

function div(className: string): HTMLDivElement {
  const node = document.createElement('div');
  node.className = className;
  return node;
}

function span(className: string, text: string): HTMLSpanElement {
  const node = document.createElement('span');
  node.className = className;
  node.textContent = text;
  return node;
}

function button(label: string, className: string, onClick: () => void): HTMLButtonElement {
  const node = document.createElement('button');
  node.className = `${className} jp-Button jp-mod-styled jp-mod-minimal`;
  node.textContent = label;
  node.addEventListener('click', onClick);
  return node;
}

const STYLE = `
.jp-TasksRestored {
  margin: 4px 0 4px var(--jp-cell-prompt-width, 64px);
  padding: 6px 8px;
  border: var(--jp-border-width) solid var(--jp-border-color2);
  border-left: 3px solid var(--jp-brand-color1);
  background: var(--jp-layout-color0);
  font-size: var(--jp-ui-font-size1);
  overflow: hidden;
}
.jp-TasksRestored[data-status='succeeded'] { border-left-color: var(--jp-success-color1); }
.jp-TasksRestored[data-status='failed'],
.jp-TasksRestored[data-status='timeout'],
.jp-TasksRestored[data-status='oom'] { border-left-color: var(--jp-error-color1); }
.jp-TasksRestored[data-status='cancelled'],
.jp-TasksRestored[data-status='interrupted'] { border-left-color: var(--jp-border-color1); }
.jp-TasksRestored-header { display: flex; gap: 8px; align-items: baseline; white-space: nowrap; }
.jp-TasksRestored-status { font-weight: 600; }
.jp-TasksRestored-label { overflow: hidden; text-overflow: ellipsis; min-width: 0; flex: 0 1 auto; }
.jp-TasksRestored-meta { color: var(--jp-ui-font-color2); margin-left: auto; }
.jp-TasksRestored-note { color: var(--jp-ui-font-color2); font-style: italic; margin: 2px 0; }
.jp-TasksRestored-output {
  max-height: 24em; overflow: auto; margin: 4px 0; white-space: pre-wrap;
  font-family: var(--jp-code-font-family); font-size: var(--jp-code-font-size);
}
.jp-TasksRestored-output:empty { display: none; }
.jp-TasksRestored-stderr { background: var(--jp-rendermime-error-background); }
.jp-TasksRestored-error { color: var(--jp-error-color1); }
.jp-TasksRestored-error:empty { display: none; }
.jp-TasksRestored-result:empty { display: none; }
.jp-TasksRestored-resultCaption { color: var(--jp-ui-font-color2); font-size: var(--jp-ui-font-size0); }
.jp-TasksRestored-resultValue {
  margin: 2px 0 4px; padding: 4px 6px; max-height: 16em; overflow: auto;
  background: var(--jp-layout-color2); white-space: pre-wrap; overflow-wrap: anywhere;
  font-family: var(--jp-code-font-family); font-size: var(--jp-code-font-size);
}
.jp-TasksRestored-question {
  display: flex; flex-wrap: wrap; gap: 4px 6px; align-items: center; margin: 4px 0;
}
.jp-TasksRestored-question:empty { display: none; }
.jp-TasksRestored-question form { display: flex; gap: 4px; }
.jp-TasksRestored-prompt { font-weight: 600; }
.jp-TasksRestored-problem { color: var(--jp-error-color1); }
.jp-TasksRestored-problem:empty { display: none; }
.jp-TasksRestored-buttons { display: flex; gap: 4px; }
.jp-TasksRestored-deadCard { display: none; }
`;

let styleInstalled = false;

function installStyle(): void {
  if (styleInstalled) {
    return;
  }
  styleInstalled = true;
  const style = document.createElement('style');
  style.dataset.owner = 'jupyter-tasks-cardrestore';
  style.textContent = STYLE;
  document.head.appendChild(style);
}
