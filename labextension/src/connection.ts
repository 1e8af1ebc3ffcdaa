/**
 * Talking to the jupyter-tasks server extension: REST calls (`TasksAPI`), the
 * event websocket with reconnection (`EventStream`), and the glue that keeps a
 * `TasksModel` in sync with both (`TasksConnection`).
 */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';
import { IDisposable } from '@lumino/disposable';
import { ISignal, Signal } from '@lumino/signaling';

import { parseJson } from './json';
import { TasksModel } from './model';
import { SchedulesModel } from './schedules';
import {
  IArtifact,
  IFieldError,
  IJobBody,
  ILogEntry,
  ILogPage,
  IMe,
  INotebookParameters,
  ISchedule,
  IStats,
  ITask,
  ITaskAnswer,
  ITaskConfirmation,
  ITaskEvent,
  ITaskPage
} from './types';

/** Log entries asked for per request. */
const LOG_PAGE = 1000;

/** Page size of the task list; the panel asks for older pages on demand. */
export const PAGE_SIZE = 100;
/** Running tasks read beside the first page, however old (the most a list gives). */
const RUNNING_LIMIT = 500;

/** A non-2xx answer; `message` is the problem+json `detail` when there is one. */
export class TasksAPIError extends Error {
  constructor(
    message: string,
    readonly status: number,
    /** The problem+json `errors`: which field is wrong and why. */
    readonly errors: IFieldError[] = []
  ) {
    super(message);
  }
}

/** The body of `POST /api/tasks/schedules` (and, all optional, of its PATCH). */
export interface IScheduleBody {
  name: string;
  cron: string;
  timezone?: string;
  catch_up?: string;
  paused?: boolean;
  job: IJobBody;
}

export class TasksAPI {
  constructor(readonly settings: ServerConnection.ISettings = ServerConnection.makeSettings()) {}

  list(
    options: {
      limit?: number;
      cursor?: string | null;
      scheduleId?: string;
      status?: string;
      search?: string;
    } = {}
  ): Promise<ITaskPage> {
    return this._json<ITaskPage>([], {
      query: {
        limit: String(options.limit ?? PAGE_SIZE),
        cursor: options.cursor ?? undefined,
        schedule_id: options.scheduleId,
        status: options.status,
        search: options.search
      }
    });
  }

  /** Submit a job (`POST /api/tasks`): a notebook, a command, code or a registered name. */
  submit(job: IJobBody): Promise<ITask> {
    return this._json<ITask>([], { method: 'POST', body: JSON.stringify(job) });
  }

  /** The names of a notebook's `parameters` cell with their defaults. */
  notebookParameters(path: string): Promise<INotebookParameters> {
    return this._json<INotebookParameters>(['notebook-parameters'], { query: { path } });
  }

  async schedules(): Promise<ISchedule[]> {
    return (await this._json<{ schedules: ISchedule[] }>(['schedules'])).schedules;
  }

  createSchedule(body: IScheduleBody): Promise<ISchedule> {
    return this._json<ISchedule>(['schedules'], { method: 'POST', body: JSON.stringify(body) });
  }

  updateSchedule(id: string, change: Partial<IScheduleBody>): Promise<ISchedule> {
    return this._json<ISchedule>(['schedules', id], {
      method: 'PATCH',
      body: JSON.stringify(change)
    });
  }

  async deleteSchedule(id: string): Promise<void> {
    await this._fetch(['schedules', id], { method: 'DELETE' });
  }

  /** `pause`, `resume` (the schedule) or `run` (the new task). */
  scheduleAction(id: string, action: 'pause' | 'resume'): Promise<ISchedule>;
  scheduleAction(id: string, action: 'run'): Promise<ITaskAnswer>;
  scheduleAction(id: string, action: string): Promise<ISchedule | ITask> {
    return this._json<ISchedule | ITask>(['schedules', id, action], { method: 'POST' });
  }

  /** The next run times of a cron rule; a 422 `TasksAPIError` when it is invalid. */
  async previewSchedule(cron: string, timezone: string, count = 5): Promise<string[]> {
    const body = JSON.stringify({ cron, timezone, count });
    const answer = await this._json<{ next_runs: string[] }>(['schedules', 'preview'], {
      method: 'POST',
      body
    });
    return answer.next_runs;
  }

  /** The caller's tasks counted by status and by queue. */
  stats(): Promise<IStats> {
    return this._json<IStats>(['stats']);
  }

  /** Who the server takes this client for, and its root directory. */
  me(): Promise<IMe> {
    return this._json<IMe>(['me']);
  }

  get(id: string): Promise<ITask> {
    return this._json<ITask>([id]);
  }

  cancel(id: string): Promise<ITask> {
    return this._json<ITask>([id, 'cancel'], { method: 'POST' });
  }

  rerun(id: string): Promise<ITaskAnswer> {
    return this._json<ITaskAnswer>([id, 'rerun'], { method: 'POST' });
  }

  /**
   * Answer a task's question; with `askedAt` (the question's `asked_at`) only that
   * question, else the server refuses (409): not the next one, asked since.
   */
  confirm(id: string, answer: string, askedAt?: ITaskConfirmation['asked_at']): Promise<ITask> {
    return this._json<ITask>([id, 'confirm'], {
      method: 'POST',
      body: JSON.stringify({ answer, asked_at: askedAt ?? undefined })
    });
  }

  logs(id: string, after: number, limit: number): Promise<ILogPage> {
    return this._json<ILogPage>([id, 'logs'], {
      query: { after: String(after), limit: String(limit) }
    });
  }

  /**
   * Every log entry after `after`, a page at a time: `onPage` gets each page's
   * entries and the cursor after them. Stops early when `stopped()` says the
   * reader went away (a closed tab); true when it read to the end.
   */
  async readLogsAfter(
    id: string,
    after: number,
    onPage: (entries: ILogEntry[], next: number) => void,
    stopped: () => boolean
  ): Promise<boolean> {
    for (;;) {
      const page = await this.logs(id, after, LOG_PAGE);
      if (stopped()) {
        return false;
      }
      const last = page.entries[page.entries.length - 1];
      after = typeof page.next === 'number' ? page.next : last ? last.seq : after;
      onPage(page.entries, after);
      if (page.entries.length < LOG_PAGE) {
        return true;
      }
    }
  }

  async artifacts(id: string): Promise<IArtifact[]> {
    const data = await this._json<IArtifact[] | { artifacts: IArtifact[] }>([id, 'artifacts']);
    // docs/reference/rest-api.md says "list"; accept the bare array and the wrapped form alike.
    return Array.isArray(data) ? data : data.artifacts;
  }

  /**
   * Fetch an artifact with the session's credentials. A plain link would not
   * carry the `Authorization` header, so the caller turns the blob into an
   * object URL instead.
   */
  async artifactBlob(id: string, name: string): Promise<Blob> {
    const response = await this._fetch([id, 'artifacts', name]);
    return response.blob();
  }

  /** `path` is relative to `api/tasks`; each segment is URL-encoded. */
  private async _json<T>(path: string[], options: TasksAPI.IRequestOptions = {}): Promise<T> {
    const response = await this._fetch(path, options);
    return parseJson<T>(await response.text());
  }

  private async _fetch(path: string[], options: TasksAPI.IRequestOptions = {}): Promise<Response> {
    let url = URLExt.join(this.settings.baseUrl, 'api/tasks', ...path.map(encodeURIComponent));
    if (options.query) {
      const query: Record<string, string> = {};
      for (const [key, value] of Object.entries(options.query)) {
        if (value !== undefined) {
          query[key] = value;
        }
      }
      url += URLExt.objectToQueryString(query);
    }
    const init: RequestInit = { method: options.method ?? 'GET' };
    if (options.body !== undefined) {
      init.body = options.body;
      init.headers = { 'Content-Type': 'application/json' };
    }
    let response: Response;
    try {
      response = await ServerConnection.makeRequest(url, init, this.settings);
    } catch (error) {
      throw new ServerConnection.NetworkError(error as TypeError);
    }
    if (!response.ok) {
      const problem = await readProblem(response);
      throw new TasksAPIError(problem.detail, response.status, problem.errors);
    }
    return response;
  }
}

export namespace TasksAPI {
  export interface IRequestOptions {
    method?: string;
    body?: string;
    query?: Record<string, string | undefined>;
  }
}

async function readProblem(response: Response): Promise<{ detail: string; errors: IFieldError[] }> {
  const fallback = `${response.status} ${response.statusText}`.trim();
  try {
    const problem = await response.json();
    const errors = Array.isArray(problem.errors)
      ? problem.errors.map((e: { field?: unknown; message?: unknown }) => ({
          field: String(e.field ?? ''),
          message: String(e.message ?? '')
        }))
      : [];
    return {
      detail: String(problem.detail || problem.title || problem.message || fallback),
      errors
    };
  } catch {
    return { detail: fallback, errors: [] };
  }
}

export type StreamStatus = 'connecting' | 'open' | 'closed';

/**
 * The `api/tasks/events` websocket. Reconnects with exponential backoff and
 * resumes after the last applied event (`since`), which the server answers by
 * replaying everything newer, so a drop loses nothing.
 */
export class EventStream implements IDisposable {
  constructor(options: EventStream.IOptions) {
    this._settings = options.settings;
    this._since = options.since;
  }

  get received(): ISignal<this, ITaskEvent> {
    return this._received;
  }

  get statusChanged(): ISignal<this, StreamStatus> {
    return this._statusChanged;
  }

  get status(): StreamStatus {
    return this._status;
  }

  get isDisposed(): boolean {
    return this._isDisposed;
  }

  connect(): void {
    if (this._isDisposed || this._socket) {
      return;
    }
    this._setStatus('connecting');
    // the first message names the event the stream starts after (a page cannot read the
    // handshake's header): a drop before any event resumes from there, not from a later
    // "now" that skips whatever happened in between
    const query: Record<string, string> = { announce: '1' };
    const since = this._since();
    if (since !== null) {
      query.since = String(since);
    }
    // Browsers cannot set headers on a websocket; the token goes in the query.
    if (this._settings.token) {
      query.token = this._settings.token;
    }
    const url =
      URLExt.join(this._settings.wsUrl, 'api/tasks/events') + URLExt.objectToQueryString(query);
    const socket = new this._settings.WebSocket(url);
    this._socket = socket;
    socket.onopen = () => {
      this._openedAt = Date.now();
      this._setStatus('open');
    };
    socket.onmessage = (message: MessageEvent) => {
      let event: ITaskEvent;
      try {
        event = parseJson<ITaskEvent>(message.data);
      } catch (error) {
        console.warn('jupyter-tasks: ignoring a malformed event', error);
        return;
      }
      this._received.emit(event);
    };
    socket.onclose = () => {
      this._socket = null;
      this._scheduleReconnect();
    };
  }

  dispose(): void {
    if (this._isDisposed) {
      return;
    }
    this._isDisposed = true;
    if (this._timer !== null) {
      clearTimeout(this._timer);
    }
    if (this._socket) {
      this._socket.onclose = null;
      this._socket.close();
      this._socket = null;
    }
    this._setStatus('closed');
    Signal.clearData(this);
  }

  private _scheduleReconnect(): void {
    if (this._isDisposed) {
      return;
    }
    this._setStatus('closed');
    // A connection that lived a while was healthy: start the backoff over. One
    // that the server drops at once (auth, missing extension) keeps growing it.
    if (this._openedAt !== null && Date.now() - this._openedAt > HEALTHY_MS) {
      this._attempt = 0;
    }
    this._openedAt = null;
    const base = Math.min(MAX_DELAY_MS, FIRST_DELAY_MS * 2 ** this._attempt);
    // Jitter keeps many tabs from reconnecting in lockstep after a restart.
    const delay = base * (0.75 + Math.random() * 0.5);
    this._attempt++;
    this._timer = setTimeout(() => {
      this._timer = null;
      this.connect();
    }, delay);
  }

  private _setStatus(status: StreamStatus): void {
    if (status !== this._status) {
      this._status = status;
      this._statusChanged.emit(status);
    }
  }

  private _settings: ServerConnection.ISettings;
  private _since: () => number | null;
  private _socket: WebSocket | null = null;
  private _status: StreamStatus = 'closed';
  private _attempt = 0;
  private _openedAt: number | null = null;
  private _timer: ReturnType<typeof setTimeout> | null = null;
  private _received = new Signal<this, ITaskEvent>(this);
  private _statusChanged = new Signal<this, StreamStatus>(this);
  private _isDisposed = false;
}

/**
 * The server's own message (never stored) to a client resuming with an id past its
 * newest event: start over, resuming after the message's `id`.
 */
export const STREAM_RESET = 'stream.reset';

/** The server's own first message (never stored): the stream starts after its `id`. */
export const STREAM_START = 'stream.start';

/** How often at most the server's counts are read again while events arrive. */
const TOTALS_EVERY_MS = 1000;
/** The counts are read again after this many times as long as the last read took. */
const TOTALS_COST_SHARE = 20;

const FIRST_DELAY_MS = 500;
const MAX_DELAY_MS = 30_000;
const HEALTHY_MS = 10_000;

export namespace EventStream {
  export interface IOptions {
    settings: ServerConnection.ISettings;
    /** The event id to resume after, read at each (re)connection. */
    since: () => number | null;
  }
}

/**
 * Keeps a `TasksModel` current: the first page over REST, then every change
 * from the websocket; older pages when asked.
 */
export class TasksConnection implements IDisposable {
  constructor(options: TasksConnection.IOptions) {
    this.model = options.model;
    this.schedules = options.schedules ?? new SchedulesModel();
    this.api = options.api ?? new TasksAPI();
    this._stream = new EventStream({
      settings: this.api.settings,
      since: () => this.model.lastEventId
    });
    this._stream.received.connect(this._onEvent, this);
    this._stream.statusChanged.connect(this._onStatus, this);
  }

  readonly model: TasksModel;
  readonly schedules: SchedulesModel;
  readonly api: TasksAPI;

  /** Events that changed the model, in order, as they arrive. */
  get eventsApplied(): ISignal<this, ITaskEvent> {
    return this._eventsApplied;
  }

  get stream(): EventStream {
    return this._stream;
  }

  /** The last REST failure, shown by the panel; null once a load succeeds. */
  get error(): string | null {
    return this._error;
  }

  get errorChanged(): ISignal<this, string | null> {
    return this._errorChanged;
  }

  get hasOlder(): boolean {
    return this._cursor !== null;
  }

  get isDisposed(): boolean {
    return this._stream.isDisposed;
  }

  start(): void {
    this._stream.connect();
  }

  /** Re-read the first page, e.g. after a failed load. */
  async refresh(): Promise<void> {
    const asOf = this.model.lastEventId;
    const [page, running] = await Promise.all([this._load(null), this._loadRunning()]);
    if (running) {
      this.model.applySnapshots(running, asOf);
    }
    if (page) {
      this.model.applySnapshots(page.tasks, asOf);
      if (!this._loaded) {
        this._cursor = page.next_cursor;
        this._loaded = true;
      }
      void this._refreshTotals();
    }
  }

  /**
   * The task with this id: the model's copy, else read over REST into the model (a
   * task older than the loaded pages, named by a log tab or a lineage link); null
   * when there is none to read.
   */
  async ensureTask(id: string): Promise<ITask | null> {
    const known = this.model.get(id);
    if (known) {
      return known;
    }
    const asOf = this.model.lastEventId;
    try {
      const task = await this.api.get(id);
      this.model.applySnapshots([task], asOf);
      return this.model.get(id) ?? null;
    } catch (error) {
      console.warn(`jupyter-tasks: could not read task ${id}`, error);
      return null;
    }
  }

  /** Load the next page of older tasks. */
  async loadOlder(): Promise<void> {
    if (this._cursor === null) {
      return;
    }
    const asOf = this.model.lastEventId;
    const page = await this._load(this._cursor);
    if (page) {
      this.model.applySnapshots(page.tasks, asOf);
      this._cursor = page.next_cursor;
      void this._refreshTotals();
    }
  }

  cancel(id: string): Promise<ITask> {
    return this._act(() => this.api.cancel(id));
  }

  /** @returns the new task, or the run its task_key already had (`deduplicated`). */
  rerun(id: string): Promise<ITaskAnswer> {
    return this._act(() => this.api.rerun(id));
  }

  confirm(id: string, answer: string, askedAt?: ITaskConfirmation['asked_at']): Promise<ITask> {
    return this._act(() => this.api.confirm(id, answer, askedAt));
  }

  dispose(): void {
    if (this._totalsTimer !== null) {
      clearTimeout(this._totalsTimer);
      this._totalsTimer = null;
    }
    this._stream.dispose();
    Signal.clearData(this);
  }

  /**
   * The server's counts for a model that holds only the newest pages (the
   * status bar and the status filter count every task, not the loaded ones);
   * none once every task is loaded, whose own counts are exact.
   */
  private async _refreshTotals(): Promise<void> {
    if (this._cursor === null) {
      this.model.setTotals(null);
      return;
    }
    try {
      const started = Date.now();
      const stats = await this.api.stats();
      this._totalsCostMs = Date.now() - started;
      if (this._cursor !== null && !this.isDisposed) {
        const queued: Record<string, number> = {};
        for (const [queue, counts] of Object.entries(stats.queues)) {
          queued[queue] = counts.queued;
        }
        this.model.setTotals(stats.statuses, queued);
      }
    } catch (error) {
      console.warn('jupyter-tasks: could not read /api/tasks/stats', error);
    }
  }

  /**
   * Read the counts again after events: at most once per TOTALS_EVERY_MS, and
   * after TOTALS_COST_SHARE times as long as the last read took (the counts of
   * a million tasks take 30-70 ms of the server's reader, and more on a loaded
   * server: each open panel then asks less often).
   */
  private _totalsLater(): void {
    if (this._totalsTimer !== null || this._cursor === null) {
      return;
    }
    const delay = Math.max(TOTALS_EVERY_MS, TOTALS_COST_SHARE * this._totalsCostMs);
    this._totalsTimer = setTimeout(() => {
      this._totalsTimer = null;
      void this._refreshTotals();
    }, delay);
  }

  /**
   * Apply an action's answer at once, so the panel reacts even before (or
   * without) the matching event; the event, when it comes, wins anyway.
   */
  private async _act<T extends ITask>(action: () => Promise<T>): Promise<T> {
    const asOf = this.model.lastEventId;
    const task = await action();
    this.model.applySnapshots([task], asOf);
    return task;
  }

  /**
   * Each applied event with the task as the model held it just before: a view
   * can tell a task that ended from one that arrived already finished.
   */
  get transitions(): ISignal<this, TasksConnection.ITransition> {
    return this._transitions;
  }

  /** Re-read the schedules (on each (re)connection; events keep them live between). */
  async refreshSchedules(): Promise<void> {
    try {
      this.schedules.applySnapshot(await this.api.schedules());
    } catch (error) {
      console.warn('jupyter-tasks: could not read the schedules', error);
    }
  }

  /** Read a schedule's firings into the model (older ones may not be loaded yet). */
  async loadFirings(scheduleId: string): Promise<void> {
    const asOf = this.model.lastEventId;
    const page = await this.api.list({ limit: PAGE_SIZE, scheduleId });
    this.model.applySnapshots(page.tasks, asOf);
  }

  /**
   * Read the newest tasks with one of `statuses` into the model: a status filter
   * must not say nothing matches while its count says some do, on older pages.
   */
  async loadStatuses(statuses: string[]): Promise<void> {
    const asOf = this.model.lastEventId;
    const page = await this.api.list({ limit: PAGE_SIZE, status: statuses.join(',') });
    this.model.applySnapshots(page.tasks, asOf);
  }

  /**
   * The server's newest tasks matching a search, into the model: the loaded pages are
   * the newest hundred tasks, and a search matched only those ("No task matches" for
   * a task the server finds, 52 clicks of "Load older tasks" away).
   */
  async loadSearch(search: string): Promise<void> {
    const asOf = this.model.lastEventId;
    const page = await this.api.list({ limit: PAGE_SIZE, search });
    this.model.applySnapshots(page.tasks, asOf);
  }

  /** Submit a job and put it in the model at once. */
  submit(job: IJobBody): Promise<ITask> {
    return this._act(() => this.api.submit(job));
  }

  /** Pause, resume or edit a schedule; the answer goes in the model at once. */
  async updateSchedule(
    id: string,
    change: 'pause' | 'resume' | Partial<IScheduleBody>
  ): Promise<ISchedule> {
    const schedule =
      typeof change === 'string'
        ? await this.api.scheduleAction(id, change)
        : await this.api.updateSchedule(id, change);
    this.schedules.put(schedule);
    return schedule;
  }

  async createSchedule(body: IScheduleBody): Promise<ISchedule> {
    const schedule = await this.api.createSchedule(body);
    this.schedules.put(schedule);
    return schedule;
  }

  async deleteSchedule(id: string): Promise<void> {
    await this.api.deleteSchedule(id);
    this.schedules.remove(id);
  }

  /** Fire a schedule now; @returns the new task. */
  runSchedule(id: string): Promise<ITaskAnswer> {
    return this._act(() => this.api.scheduleAction(id, 'run'));
  }

  private _onEvent(_: EventStream, event: ITaskEvent): void {
    if (event.type === STREAM_RESET) {
      // the ids this panel resumed from are of another history (the database was
      // replaced, e.g. moved aside to start empty): what it shows is gone
      this.model.reset(event.id);
      this._cursor = null;
      this._loaded = false;
      void this.refresh();
      void this.refreshSchedules();
      return;
    }
    if (event.type === STREAM_START) {
      // no task: only where to resume from (nothing when a later id is known already)
      this.model.applyEvents([event]);
      return;
    }
    if (event.type === 'schedule.changed') {
      // no task: only the event id moves in the task model (to resume after it)
      if (this.model.applyEvents([event]).length > 0) {
        this.schedules.applyEvent(event);
      }
      return;
    }
    const previous = this.model.get(event.task_id) ?? null;
    if (this.model.applyEvents([event]).length > 0) {
      if (event.task && event.task_id && event.task.status !== previous?.status) {
        this.schedules.noteTask(event.task_id, event.task.status);
      }
      this._transitions.emit({ event, previous });
      this._eventsApplied.emit(event);
      if (event.type !== 'task.progress' && event.type !== 'task.log') {
        this._totalsLater();
      }
    }
  }

  /** Ask the server who "me" is, until it answered once. */
  private async _loadIdentity(): Promise<void> {
    if (this.model.identity !== null || this._identityLoading) {
      return;
    }
    this._identityLoading = true;
    try {
      const me = await this.api.me();
      this.model.identity = { owner: me.owner, rootDir: me.root_dir, seesOthers: me.sees_others };
    } catch (error) {
      console.warn('jupyter-tasks: could not read /api/tasks/me; retrying on reconnect', error);
    } finally {
      this._identityLoading = false;
    }
  }

  private _onStatus(_: EventStream, status: StreamStatus): void {
    // The list is read once the socket is open, so no change can fall between
    // the read and the stream. A reconnect resumes with `since` and needs no
    // read, unless no event ever arrived and there is nothing to resume from.
    if (status === 'open' && (!this._loaded || this.model.lastEventId === null)) {
      void this.refresh();
    }
    if (status === 'open') {
      void this._loadIdentity();
      void this.refreshSchedules();
    }
    if (status === 'closed' && !this._loaded) {
      void this._sayWhyRefused();
    }
  }

  /**
   * Why a stream that never opened is refused, when the server says so over REST (a
   * 503 naming an unusable configuration or database): a refused websocket handshake
   * tells a page nothing, and the list is read only once the socket opens. A network
   * failure is left to the "offline" label.
   */
  private async _sayWhyRefused(): Promise<void> {
    try {
      await this.api.stats();
    } catch (error) {
      if (error instanceof TasksAPIError && !this._loaded) {
        this._setError(error.message);
      }
    }
  }

  /**
   * Every running task (the first RUNNING_LIMIT), whatever its age: the running
   * section and the questions waiting for an answer must not depend on whether a
   * task is among the newest page.
   */
  private async _loadRunning(): Promise<ITask[] | null> {
    try {
      return (await this.api.list({ limit: RUNNING_LIMIT, status: 'running' })).tasks;
    } catch (error) {
      console.warn('jupyter-tasks: could not read the running tasks', error);
      return null;
    }
  }

  private async _load(cursor: string | null): Promise<ITaskPage | null> {
    try {
      const page = await this.api.list({ limit: PAGE_SIZE, cursor });
      this._setError(null);
      return page;
    } catch (error) {
      this._setError((error as Error).message);
      return null;
    }
  }

  private _setError(error: string | null): void {
    if (error !== this._error) {
      this._error = error;
      this._errorChanged.emit(error);
    }
  }

  private _stream: EventStream;
  private _totalsTimer: ReturnType<typeof setTimeout> | null = null;
  private _totalsCostMs = 0;
  private _identityLoading = false;
  private _cursor: string | null = null;
  private _loaded = false;
  private _error: string | null = null;
  private _eventsApplied = new Signal<this, ITaskEvent>(this);
  private _transitions = new Signal<this, TasksConnection.ITransition>(this);
  private _errorChanged = new Signal<this, string | null>(this);
}

export namespace TasksConnection {
  export interface ITransition {
    event: ITaskEvent;
    /** The task before the event; null when the model did not know it. */
    previous: ITask | null;
  }

  export interface IOptions {
    model: TasksModel;
    schedules?: SchedulesModel;
    api?: TasksAPI;
  }
}
