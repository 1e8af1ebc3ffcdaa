/**
 * A main-area widget that tails one task's log: a header (status, attempt,
 * elapsed), one row per line with its time, markers between attempts, and
 * follow / wrap / search / download.
 */
import { Widget } from '@lumino/widgets';

import { tasksIcon } from './icons';

import { TasksAPIError, TasksConnection } from './connection';
import {
  ERASED,
  attemptText,
  attemptWhyParts,
  errorText,
  formatDuration,
  lateCancelText,
  shortId,
  taskLabel,
  typeInto
} from './format';
import { ILogEntry, ITask, ITaskEvent, isActive } from './types';

/** Entries per request; a full page means more may be waiting. */
const POLL_MS = 1000;
/**
 * Lines kept on the page: a task's log may hold 140,000 lines of 70 characters
 * (its default budget), and the page took 10 s and 470 MB of heap to show them.
 * Earlier ones leave the page (a note says how many); Download saves the whole log.
 */
export const MAX_SHOWN_LINES = 20_000;
/** Earlier lines (off the page) a search lists at most; the count covers all of them. */
export const MAX_EARLIER_MATCHES = 500;
/** Distance from the bottom (px) that still counts as "at the end". */
const AT_END_PX = 24;
/**
 * Escape sequences a <pre> would show raw: CSI (colours, cursor moves), OSC (a
 * window title; a hyperlink, whose text stays) ended by BEL or ESC \, and the
 * two-character ones (`tput sgr0`'s charset ESC ( B). Only colour codes were
 * taken before: a link showed as `]8;;https://…` around its text.
 */
// eslint-disable-next-line no-control-regex
const ANSI = /\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[()*+\-./][ -~]|[ -~])/g;
/** "Erase the line" (ESC [ 2 K), which a progress line sends before its `\r`. */
// eslint-disable-next-line no-control-regex
const ERASE_LINE = /\x1b\[2K/g;
/** The line the engine writes when an attempt after the first begins. */
const MARKER = /^— attempt (\d+) of (\d+): (.*) —$/;

export function stripAnsi(text: string): string {
  return text.replace(ANSI, '');
}

/**
 * `stripAnsi` for the log's typing of lines, keeping each "erase the line" as
 * `ERASED` for `typeInto`: "done:\x1b[2K\rreplaced" reads "replaced", where it
 * read "replacedne:".
 */
function typingText(text: string): string {
  return text.replace(ERASE_LINE, ERASED).replace(ANSI, '');
}

/** `{attempt, of, reason}` for an engine attempt marker line, else null. */
export function parseMarker(text: string): { attempt: number; of: number; reason: string } | null {
  const match = MARKER.exec(text.trim());
  return match ? { attempt: Number(match[1]), of: Number(match[2]), reason: match[3] } : null;
}

/** Local `HH:MM:SS` of a log time (ISO string or epoch seconds). */
export function clockTime(ts: string | number): string {
  const date = new Date(typeof ts === 'number' ? ts * 1000 : ts);
  if (Number.isNaN(date.getTime())) {
    return '';
  }
  const pad = (n: number) => String(n).padStart(2, '0');
  return `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`;
}

/** One rendered line (a chunk without a newline continues the previous line). */
interface ILine {
  node: HTMLDivElement;
  text: HTMLSpanElement;
  raw: string;
  /** Where the next character goes (a carriage return moves it back to 0). */
  col: number;
  marker: boolean;
}

/** A line that left the page: what a search of the earlier lines shows of it. */
interface IEarlierLine {
  raw: string;
  clock: string;
  title: string;
  className: string;
}

/**
 * New lines are fetched when a `task.log` event for the task arrives, and by a
 * one-second poll while the task is active and the event stream is down.
 */
export class TaskLogView extends Widget {
  constructor(options: TaskLogView.IOptions) {
    super();
    this._connection = options.connection;
    this.taskId = options.taskId;
    this.addClass('jp-TasksLog');
    this.node.dataset.taskId = this.taskId;
    this.node.tabIndex = 0;

    this._header = this._buildHeader();
    this._body = document.createElement('div');
    this._body.className = 'jp-TasksLog-body';
    this._output = document.createElement('div');
    this._output.className = 'jp-TasksLog-output';
    this._output.setAttribute('role', 'log');
    this._message = document.createElement('div');
    this._message.className = 'jp-TasksLog-message';
    this._hiddenNote = document.createElement('div');
    this._hiddenNote.className = 'jp-TasksLog-hidden';
    this._hiddenNote.hidden = true;
    this._earlier = document.createElement('div');
    this._earlier.className = 'jp-TasksLog-earlier';
    this._earlier.hidden = true;
    this._body.append(this._hiddenNote, this._earlier, this._output, this._message);
    this.node.append(this._header, this._body);
    this._body.addEventListener('scroll', () => this._onScroll(), { passive: true });
    this._setWrap(true);
    this._setFollowing(true);

    this.title.icon = tasksIcon;
    this.title.caption = `Log of task ${this.taskId}`;
    this._connection.eventsApplied.connect(this._onEvent, this);
    this._timer = setInterval(() => this._poll(), POLL_MS);
    this._renderHeader();
    void this._fetch();
    // a task older than the panel's loaded pages (a tab restored at start-up, a link
    // from a rerun): read it, or the header would say "loading…" for good
    void this._connection.ensureTask(this.taskId).then(() => {
      if (!this.isDisposed) {
        this._renderHeader();
        this._renderEmpty();
      }
    });
  }

  readonly taskId: string;

  /** True while new lines keep the view at the end. */
  get following(): boolean {
    return this._following;
  }

  dispose(): void {
    if (this.isDisposed) {
      return;
    }
    clearInterval(this._timer);
    super.dispose();
  }

  /** The whole log as the task printed it (what Download saves). */
  text(): string {
    return this._entries.map(entry => stripAnsi(entry.text)).join('');
  }

  // ------------------------------------------------------------------ header

  private _buildHeader(): HTMLDivElement {
    const header = document.createElement('div');
    header.className = 'jp-TasksLog-header';
    this._status = document.createElement('span');
    this._status.className = 'jp-TasksLog-status';
    this._attempt = document.createElement('span');
    this._attempt.className = 'jp-TasksLog-attempt';
    this._elapsed = document.createElement('span');
    this._elapsed.className = 'jp-TasksLog-elapsed';
    const id = document.createElement('span');
    id.className = 'jp-TasksLog-id';
    id.textContent = shortId(this.taskId);
    id.title = `task ${this.taskId}`;
    const spacer = document.createElement('span');
    spacer.className = 'jp-TasksLog-spacer';

    this._search = document.createElement('input');
    this._search.type = 'search';
    this._search.className = 'jp-TasksLog-search jp-mod-styled';
    this._search.placeholder = 'Search the log';
    this._search.setAttribute('aria-label', 'Search the log');
    this._search.addEventListener('input', () => this._applySearch());
    this._matches = document.createElement('span');
    this._matches.className = 'jp-TasksLog-matches';

    this._followButton = this._button('Follow', 'jp-TasksLog-follow', () =>
      this._setFollowing(!this._following)
    );
    this._wrapButton = this._button('Wrap', 'jp-TasksLog-wrap', () => this._setWrap(!this._wrap));
    const download = this._button('Download', 'jp-TasksLog-download', () => this._download());
    download.title = 'Save the whole log as a .txt file';
    header.append(
      this._status,
      this._attempt,
      this._elapsed,
      id,
      spacer,
      this._search,
      this._matches,
      this._followButton,
      this._wrapButton,
      download
    );
    return header;
  }

  private _button(label: string, className: string, onClick: () => void): HTMLButtonElement {
    const button = document.createElement('button');
    button.type = 'button';
    button.className = `jp-TasksLog-button ${className}`;
    button.textContent = label;
    button.addEventListener('click', onClick);
    return button;
  }

  /** Status, attempt and elapsed from the model's copy of the task. */
  private _renderHeader(): void {
    const task = this._deleted ? undefined : this._connection.model.get(this.taskId);
    if (task) {
      this._knownLabel = taskLabel(task, shortId(this.taskId));
    }
    // the tab's title (a MainAreaWidget copies it): the name once the task is known, and
    // kept once it is deleted (the tab still holds its log)
    const label = `Log: ${this._knownLabel ?? shortId(this.taskId)}`;
    if (this.title.label !== label) {
      this.title.label = label;
    }
    if (this._deleted) {
      // said as such: "loading…" (in the last status's colour) waited for good
      this._status.textContent = 'deleted';
      this._status.dataset.status = 'deleted';
      return;
    }
    if (!task) {
      this._status.textContent = 'loading…';
      return;
    }
    this._status.textContent = task.cancel_requested && isActive(task) ? 'cancelling' : task.status;
    this._status.dataset.status = task.status;
    this._status.title = lateCancelText(task) ?? '';
    const attempt = attemptText(task);
    const why = attemptWhyParts(task).join(', ');
    const line = attempt ? (why ? `${attempt} · ${why}` : attempt) : '';
    this._attempt.textContent = line;
    // whole here: the header cuts a long line with an ellipsis
    this._attempt.title = [line, task.retry_reason ? `retried after: ${task.retry_reason}` : '']
      .filter(Boolean)
      .join('\n');
    this._attempt.hidden = attempt === null;
    this._elapsed.textContent = elapsedText(task, Date.now());
  }

  // ------------------------------------------------------------------ controls

  private _setFollowing(on: boolean): void {
    this._following = on;
    this._followButton.setAttribute('aria-pressed', String(on));
    this._followButton.textContent = on ? 'Following' : 'Follow';
    this._followButton.title = on
      ? 'New lines scroll into view; scroll up to pause'
      : 'Paused: click to jump to the end and follow new lines';
    this.node.classList.toggle('jp-mod-following', on);
    if (on) {
      this._scrollToEnd();
    }
  }

  private _setWrap(on: boolean): void {
    this._wrap = on;
    this._wrapButton.setAttribute('aria-pressed', String(on));
    this.node.classList.toggle('jp-mod-nowrap', !on);
  }

  /** Scrolling up pauses following; scrolling back to the end resumes it. */
  private _onScroll(): void {
    const body = this._body;
    const atEnd = body.scrollHeight - body.scrollTop - body.clientHeight < AT_END_PX;
    if (atEnd !== this._following) {
      this._setFollowing(atEnd);
    }
  }

  private _scrollToEnd(): void {
    this._body.scrollTop = this._body.scrollHeight;
    this._endTop = this._body.scrollTop;
  }

  /**
   * The reader scrolled up since the view last put itself at the end. Its scroll
   * event comes with the next frame: lines arriving first must not undo the scroll.
   */
  private _scrolledAway(): boolean {
    const body = this._body;
    return (
      body.scrollTop < this._endTop - 1 &&
      body.scrollHeight - body.scrollTop - body.clientHeight >= AT_END_PX
    );
  }

  private _applySearch(): void {
    const query = this._search.value.trim().toLowerCase();
    let count = 0;
    for (const line of this._lines) {
      if (this._highlight(line, query)) {
        count++;
      }
    }
    const plural = count === 1 ? '' : 's';
    if (this._earlierLines.length > 0) {
      // the lines that left the page are searched too, and listed above it
      const earlier = query
        ? this._earlierLines.filter(line => line.raw.toLowerCase().includes(query))
        : [];
      this._showEarlier(earlier, query);
      this._matches.textContent = query
        ? `${count} line${plural} on the page, ${earlier.length} earlier`
        : '';
    } else {
      this._matches.textContent = query ? `${count} line${plural}` : '';
    }
    this.node.classList.toggle('jp-mod-searching', !!query);
    if (this._following) {
      this._scrollToEnd();
    }
  }

  /** Marks the query in one line, hides it if it does not match; true on a match. */
  private _highlight(line: ILine, query: string): boolean {
    if (!query) {
      line.text.textContent = line.raw;
      line.node.classList.remove('jp-mod-hidden');
      return false;
    }
    const found = markMatches(line.text, line.raw, query);
    // attempt markers stay visible: they say which attempt a match belongs to
    line.node.classList.toggle('jp-mod-hidden', !found && !line.marker);
    return found;
  }

  /** Lists the earlier lines (off the page) that match, above the page; none: hidden. */
  private _showEarlier(matches: IEarlierLine[], query: string): void {
    const earlier = this._earlier;
    earlier.hidden = matches.length === 0;
    if (matches.length === 0) {
      earlier.replaceChildren();
      return;
    }
    const title = document.createElement('div');
    title.className = 'jp-TasksLog-earlierTitle';
    const n = matches.length;
    title.textContent =
      `${n.toLocaleString('en-US')} earlier line${n === 1 ? '' : 's'} (not on the page) ` +
      `match${n === 1 ? 'es' : ''}` +
      (n > MAX_EARLIER_MATCHES ? `; the first ${MAX_EARLIER_MATCHES} are listed:` : ':');
    const rows = matches.slice(0, MAX_EARLIER_MATCHES).map(line => {
      const { node, text } = rowNodes(line.clock, line.title);
      node.className = line.className;
      markMatches(text, line.raw, query);
      return node;
    });
    earlier.replaceChildren(title, ...rows);
  }

  private _download(): void {
    const blob = new Blob([this.text()], { type: 'text/plain' });
    const url = URL.createObjectURL(blob);
    const link = document.createElement('a');
    const task = this._connection.model.get(this.taskId);
    const name = (task?.label || task?.name || 'task').replace(/[^\w.-]+/g, '_').slice(0, 60);
    link.href = url;
    link.download = `${name}-${shortId(this.taskId)}.log.txt`;
    document.body.appendChild(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 0);
  }

  // ------------------------------------------------------------------ data

  private _onEvent(_: TasksConnection, event: ITaskEvent): void {
    if (event.task_id !== this.taskId) {
      return;
    }
    this._renderHeader();
    // the empty log's line says what the task is doing: queued, then running
    this._renderEmpty();
    if (event.type === 'task.deleted') {
      this._markDeleted('The task was deleted.');
    } else if (event.type === 'task.log' || (event.task && !isActive(event.task))) {
      // A terminal event may follow the last lines closely: read once more.
      void this._fetch();
    }
  }

  private _poll(): void {
    const task = this._connection.model.get(this.taskId);
    this._renderHeader();
    if (!task) {
      // Not loaded yet (a tab restored at start-up); events still drive fetches.
      return;
    }
    if (!isActive(task)) {
      // Nothing more will be written; the fetch that saw the end is enough.
      clearInterval(this._timer);
      void this._fetch();
    } else if (this._connection.stream.status !== 'open') {
      void this._fetch();
    }
  }

  /** Reads until caught up; concurrent calls fold into one more round. */
  private async _fetch(): Promise<void> {
    if (this._fetching) {
      this._again = true;
      return;
    }
    this._fetching = true;
    try {
      do {
        this._again = false;
        const complete = await this._connection.api.readLogsAfter(
          this.taskId,
          this._after,
          (entries, next) => {
            this._append(entries);
            this._after = next;
          },
          () => this.isDisposed
        );
        if (!complete) {
          return;
        }
      } while (this._again);
      this._readError = false;
      this._renderEmpty();
    } catch (error) {
      if (error instanceof TasksAPIError && error.status === 404) {
        // deleted before this view opened (a tab restored after the delete)
        if (!this.isDisposed) {
          this._markDeleted('No such task any more: it was deleted (or is not yours to see).');
        }
        return;
      }
      if (!this.isDisposed) {
        this._readError = true;
        this._message.textContent = `Could not read the log: ${errorText(error)}`;
      }
    } finally {
      this._fetching = false;
    }
  }

  /** The empty log's line for the task as it is now (an unread log keeps its error). */
  private _renderEmpty(): void {
    if (this._readError || this._stopped) {
      return;
    }
    this._message.textContent = this._emptyText();
    this.node.classList.toggle('jp-mod-empty', !this._lines.some(line => !line.marker));
  }

  /** What an empty log says instead of a blank page. */
  private _emptyText(): string {
    if (this._lines.some(line => !line.marker)) {
      return '';
    }
    const task = this._connection.model.get(this.taskId);
    if (!task) {
      return 'No output yet.';
    }
    const attempts = task.attempts ?? 0;
    if (attempts > 1 && !isActive(task)) {
      // only the engine's attempt markers: say so, below them
      return `This task wrote no output in ${attempts} attempts (it ended ${task.status}).`;
    }
    if (task.status === 'queued') {
      return 'No output yet: the task is queued and has not started. Lines appear here as it prints them.';
    }
    return isActive(task)
      ? `No output yet: the task is ${task.status}. Lines appear here as it prints them.`
      : `This task wrote no output (it ended ${task.status}).`;
  }

  private _append(entries: ILogEntry[]): void {
    if (entries.length === 0) {
      return;
    }
    const query = this._search.value.trim().toLowerCase();
    const fragment = document.createDocumentFragment();
    for (const entry of entries) {
      this._entries.push(entry);
      // once per entry, not per line: the server joins adjacent writes, so an entry
      // often holds many lines
      const time = { clock: clockTime(entry.ts), title: new Date(entry.ts).toLocaleString() };
      const pieces = typingText(entry.text).replace(/\r\n/g, '\n').split('\n');
      const ended = pieces[pieces.length - 1] === '';
      if (ended) {
        pieces.pop();
      }
      pieces.forEach((piece, index) => {
        const last = this._lines[this._lines.length - 1];
        if (index === 0 && this._open && last) {
          // the previous chunk stopped mid-line: this one carries it on
          Object.assign(last, typeInto(last, piece));
          this._highlight(last, query);
          return;
        }
        const line = this._line(entry, piece, time);
        this._highlight(line, query);
        fragment.appendChild(line.node);
      });
      this._open = !ended && pieces.length > 0;
    }
    this._trim();
    const away = this._following && this._scrolledAway();
    this._output.appendChild(fragment);
    if (away) {
      this._setFollowing(false);
    }
    if (query) {
      this._applySearch();
    }
    if (this._following) {
      this._scrollToEnd();
    }
  }

  /** Drops the oldest lines past MAX_SHOWN_LINES from the page (before they are laid out). */
  private _trim(): void {
    const extra = this._lines.length - MAX_SHOWN_LINES;
    if (extra <= 0) {
      return;
    }
    for (const line of this._lines.splice(0, extra)) {
      line.node.remove();
      // kept as text (not as nodes) for a search of the whole log
      const ts = line.node.firstElementChild as HTMLElement;
      line.node.classList.remove('jp-mod-hidden');
      this._earlierLines.push({
        raw: line.raw,
        clock: ts.textContent ?? '',
        title: ts.title,
        className: line.node.className
      });
    }
    this._hiddenCount += extra;
    this._hiddenNote.textContent =
      `${this._hiddenCount.toLocaleString('en-US')} earlier lines are not shown here ` +
      `(the view keeps the last ${MAX_SHOWN_LINES.toLocaleString('en-US')}); ` +
      'Download saves the whole log.';
    this._hiddenNote.hidden = false;
  }

  private _line(entry: ILogEntry, text: string, time: { clock: string; title: string }): ILine {
    const { node, text: span } = rowNodes(time.clock, time.title);
    const marker = entry.stream === 'log' ? parseMarker(text) : null;
    if (marker) {
      node.className = 'jp-TasksLog-marker';
      node.dataset.attempt = String(marker.attempt);
      node.setAttribute('role', 'separator');
    } else {
      node.className = `jp-TasksLog-line jp-TasksLog-${entry.stream}`;
    }
    // a marker reads as a rule: "attempt 2 of 3: RuntimeError: …" between two lines
    const shown = marker
      ? { raw: `attempt ${marker.attempt} of ${marker.of}: ${marker.reason}`, col: 0 }
      : typeInto({ raw: '', col: 0 }, text);
    if (marker) {
      node.title = shown.raw; // a long reason is cut on screen: whole here
    }
    const line: ILine = { node, text: span, ...shown, marker: !!marker };
    this._lines.push(line);
    return line;
  }

  private _markDeleted(message: string): void {
    this._deleted = true;
    this._setFollowing(false);
    this._renderHeader();
    this._stop(message);
  }

  private _stop(message: string): void {
    clearInterval(this._timer);
    this._stopped = true;
    this._message.textContent = message;
  }

  private _connection: TasksConnection;
  private _header: HTMLDivElement;
  private _body: HTMLDivElement;
  private _output: HTMLDivElement;
  private _message: HTMLDivElement;
  private _hiddenNote: HTMLDivElement;
  private _hiddenCount = 0;
  /** The last read of the log failed: its message stays until a read succeeds. */
  private _readError = false;
  /** The view stopped for good (the task was deleted): its message stays. */
  private _stopped = false;
  /** The task was deleted: the header says so, and nothing is read any more. */
  private _deleted = false;
  /** The task's label while it was known (the tab keeps it after a delete). */
  private _knownLabel: string | null = null;
  private _earlier: HTMLDivElement;
  private _earlierLines: IEarlierLine[] = [];
  private _status!: HTMLSpanElement;
  private _attempt!: HTMLSpanElement;
  private _elapsed!: HTMLSpanElement;
  private _search!: HTMLInputElement;
  private _matches!: HTMLSpanElement;
  private _followButton!: HTMLButtonElement;
  private _wrapButton!: HTMLButtonElement;
  private _following = true;
  // scrollTop just after the view last scrolled itself to the end
  private _endTop = 0;
  private _wrap = true;
  private _entries: ILogEntry[] = [];
  private _lines: ILine[] = [];
  /** The last chunk did not end its line. */
  private _open = false;
  private _after = 0;
  private _fetching = false;
  private _again = false;
  private _timer: ReturnType<typeof setInterval>;
}

/** A log row's nodes: its time (the clock, the full time as its title), then its text. */
function rowNodes(clock: string, title: string): { node: HTMLDivElement; text: HTMLSpanElement } {
  const node = document.createElement('div');
  const ts = document.createElement('span');
  ts.className = 'jp-TasksLog-ts';
  ts.textContent = clock;
  ts.title = title;
  const text = document.createElement('span');
  text.className = 'jp-TasksLog-text';
  node.append(ts, text);
  return { node, text };
}

/**
 * Puts `text` into `span` with each (case-insensitive) occurrence of the lower-case
 * `query` in a `<mark>`; true when there was one.
 */
function markMatches(span: HTMLElement, text: string, query: string): boolean {
  const lower = text.toLowerCase();
  let at = lower.indexOf(query);
  if (at < 0) {
    span.textContent = text;
    return false;
  }
  span.textContent = '';
  let from = 0;
  while (at >= 0) {
    span.append(text.slice(from, at));
    const mark = document.createElement('mark');
    mark.textContent = text.slice(at, at + query.length);
    span.append(mark);
    from = at + query.length;
    at = lower.indexOf(query, from);
  }
  span.append(text.slice(from));
  return true;
}

/** `running 1m 04s`, `queued 12s`, `took 8.8s`. */
export function elapsedText(task: ITask, now: number): string {
  const start = task.started_at ? Date.parse(task.started_at) : NaN;
  if (task.status === 'queued') {
    const created = task.created_at ? Date.parse(task.created_at) : NaN;
    return Number.isNaN(created) ? '' : `waiting ${formatDuration(Math.max(0, now - created))}`;
  }
  if (Number.isNaN(start)) {
    return '';
  }
  if (isActive(task)) {
    return `running ${formatDuration(Math.max(0, now - start))}`;
  }
  const end = task.finished_at ? Date.parse(task.finished_at) : NaN;
  return Number.isNaN(end) ? '' : `took ${formatDuration(Math.max(0, end - start))}`;
}

export namespace TaskLogView {
  export interface IOptions {
    connection: TasksConnection;
    taskId: string;
  }
}
