/**
 * Times of a task as the panel shows them.
 */
import { formatAgo, formatDuration, localTime } from './format';
import { ITask } from './types';

/** Milliseconds from start to end (or to now while running); null before it started. */
export function durationMs(task: ITask, now: number = Date.now()): number | null {
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

/** Past this, a time left is no estimate anyone plans by: said as "more than a year". */
const ETA_MAX_MS = 365 * 24 * 3600 * 1000;

/** The time left at the rate so far; null before a second of progress or at either end. */
export function etaText(task: ITask, fraction: number, now: number): string | null {
  const elapsed = durationMs(task, now);
  if (elapsed === null || fraction <= 0 || fraction >= 1 || elapsed < 1000) {
    return null;
  }
  // a total of 1e300 read "13192d 05h" (or a number in e-notation): no estimate at all
  const left = (elapsed * (1 - fraction)) / fraction;
  return left > ETA_MAX_MS ? 'more than a year' : formatDuration(left);
}
