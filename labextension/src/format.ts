/**
 * Durations, relative times and sizes, in one style for every view.
 */
import { ITask, ITaskAnswer } from './types';

/**
 * The id as the dashboard, cards and CLI print it: the last 10 hex digits. (Ids are
 * time ordered, so their first digits are nearly the same for every task.)
 */
export function shortId(id: string): string {
  return id.slice(-10);
}

/**
 * A server's message as the panel shows it: the 32-character task ids in it shortened
 * as the panel shows ids everywhere else ("task 18eecd…919 already ended" read as a
 * wall of hex in a notification).
 */
export function withShortIds(message: string): string {
  return message.replace(/\b[0-9a-f]{32}\b/g, id => shortId(id));
}

/**
 * An error as a "Could not …" message ends: the server's words (ids shortened), or,
 * when no answer came at all (fetch's TypeError, which ServerConnection's NetworkError
 * extends), that the server cannot be reached: the browser's "Failed to fetch" told a
 * user nothing.
 */
export function errorText(error: unknown): string {
  if (error instanceof TypeError) {
    return 'cannot reach the server (stopped, or restarting); try again once the panel says live';
  }
  return withShortIds(String(error instanceof Error ? error.message : error));
}

// the bidirectional embeddings, overrides and isolates (U+202A-U+202E, U+2066-U+2069)
const BIDI_CONTROLS = /[\u202a-\u202e\u2066-\u2069]/g;

/**
 * A task's own text (label, name) as the panel shows it: its bidi controls become
 * U+FFFD, so a label cannot reorder how it reads (`\u202eevil.exe` shown as `exe.live`).
 * Right-to-left scripts need no controls and are left as they are.
 */
export function displayText(text: string): string {
  return text.replace(BIDI_CONTROLS, '\ufffd');
}

// white space and the characters that draw nothing: zero-width spaces and joiners, word
// joiner and invisible operators, the byte order mark, and the bidi controls
const INVISIBLE = /[\s\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]/g;

/** Whether `text` has a character that shows (a label of zero-width ones left a row blank). */
export function hasVisibleText(text: string | null | undefined): text is string {
  return !!text && text.replace(INVISIBLE, '') !== '';
}

/**
 * The name a task goes by in every view: its label, else its name, else `fallback`; a
 * label or name with nothing to see counts as none.
 */
export function taskLabel(task: ITask, fallback: string): string {
  const shown = [task.label, task.name].find(hasVisibleText);
  return displayText(shown ?? fallback);
}

/**
 * What to tell a user whose rerun (or schedule's run now: `what`) was answered with the
 * run its key already had (null when the answer is a new run): nothing was run again,
 * that run is what is shown.
 */
export function notRerunText(task: ITaskAnswer, what = 'rerun'): string | null {
  if (task.deduplicated !== true) {
    return null;
  }
  const key = hasVisibleText(task.task_key) ? ` (key ${displayText(task.task_key)})` : '';
  return (
    `Not ${what}: "${taskLabel(task, shortId(task.id))}"${key} is already ${task.status}; ` +
    'showing that run.'
  );
}

/** `850ms`, `8.8s`, `42s`, `1m 22s`, `2h 05m`: one style everywhere, never wrapping. */
export function formatDuration(ms: number): string {
  if (ms < 1000) {
    return `${Math.max(0, Math.round(ms))}ms`;
  }
  if (ms < 10_000) {
    return `${(Math.floor(ms / 100) / 10).toFixed(1)}s`;
  }
  const seconds = Math.floor(ms / 1000);
  if (seconds < 60) {
    return `${seconds}s`;
  }
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) {
    return `${minutes}m ${String(seconds % 60).padStart(2, '0')}s`;
  }
  const hours = Math.floor(minutes / 60);
  if (hours < 48) {
    return `${hours}h ${String(minutes % 60).padStart(2, '0')}m`;
  }
  return `${Math.floor(hours / 24)}d ${String(hours % 24).padStart(2, '0')}h`;
}

/** "just now", "5m ago", "3h ago", "2d ago", then the date. */
export function formatAgo(ms: number, at: number): string {
  const minutes = Math.floor(ms / 60_000);
  if (minutes < 1) {
    return 'just now';
  }
  if (minutes < 60) {
    return `${minutes}m ago`;
  }
  const hours = Math.floor(minutes / 60);
  if (hours < 24) {
    return `${hours}h ago`;
  }
  const days = Math.floor(hours / 24);
  return days < 7 ? `${days}d ago` : new Date(at).toLocaleDateString();
}

export function formatBytes(size: number): string {
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

export function localTime(iso: string | null): string {
  return iso ? new Date(iso).toLocaleString() : '';
}

/**
 * "attempt 2 of 3" from the retry policy's own bound (`max_attempts`, which
 * counts lost workers too); older servers only send `max_retries`. Null before
 * the first attempt.
 */
export function attemptText(task: ITask): string | null {
  const attempts = task.attempts ?? 0;
  if (attempts <= 0) {
    return null;
  }
  const of = task.max_attempts ?? (task.max_retries != null ? task.max_retries + 1 : null);
  return of != null ? `attempt ${attempts} of ${of}` : `attempt ${attempts}`;
}

/**
 * Said of a task that ended on its own though a cancel was asked: the cancel came once
 * its work had ended, and the engine kept that end (cancel_requested stays set).
 */
export function lateCancelText(task: ITask): string | null {
  const ownEnd = task.status === 'succeeded' || task.status === 'failed';
  return ownEnd && task.cancel_requested ? 'the cancel came after it had ended' : null;
}

/** "1 worker lost", "2 workers lost"; null when none was. */
export function lostText(task: ITask): string | null {
  const lost = task.lost_attempts ?? 0;
  return lost > 0 ? `${lost} worker${lost === 1 ? '' : 's'} lost` : null;
}

/**
 * Why the task is on a later attempt: its retry reason and its lost workers, once
 * each ("worker lost" is what "1 worker lost" already says); empty when neither.
 */
export function attemptWhyParts(task: ITask): string[] {
  const lost = lostText(task);
  const reason =
    task.retry_reason && !(lost && task.retry_reason === 'worker lost') ? task.retry_reason : null;
  return [reason, lost].filter((part): part is string => Boolean(part));
}

/** Where a log's text said "erase the line" (a private-use character no log holds). */
export const ERASED = '\ue000';

/**
 * `piece` typed into a line as a terminal would: a carriage return goes back to the
 * line's start and what follows overwrites it (a progress bar redrawn in place, as
 * tqdm draws on stderr, reads as its latest state, not as every state joined).
 */
export function typeInto(
  line: { raw: string; col: number },
  piece: string
): { raw: string; col: number } {
  let { raw, col } = line;
  piece.split('\r').forEach((part, index) => {
    if (index > 0) {
      col = 0;
    }
    part.split(ERASED).forEach((text, erased) => {
      if (erased > 0) {
        raw = ' '.repeat(col); // the line is blank, the cursor where it was
      }
      raw = raw.slice(0, col) + text + raw.slice(col + text.length);
      col += text.length;
    });
  });
  return { raw, col };
}
