/**
 * One schedule on one line: last status, name, the rule in words, paused or
 * the next run; actions on hover (pause/resume, run now, firings, edit, delete).
 */
import {
  deleteIcon,
  editIcon,
  filterListIcon,
  pauseIcon,
  runIcon,
  fastForwardIcon
} from '@jupyterlab/ui-components';
import * as React from 'react';

import { formatUntil, humanCron } from '../cron';
import { localTime } from '../format';
import { ISchedule } from '../types';

export interface IScheduleActions {
  pause(id: string): void;
  resume(id: string): void;
  run(id: string): void;
  edit(id: string): void;
  remove(id: string): void;
  showFirings(id: string): void;
}

/** What the job runs: the notebook, the task name, the command or "code". */
export function jobText(schedule: ISchedule): string {
  const job = schedule.job;
  if (job.notebook) {
    return String(job.notebook);
  }
  if (job.name) {
    return String(job.name);
  }
  if (job.command !== undefined) {
    return Array.isArray(job.command) ? job.command.join(' ') : String(job.command);
  }
  return job.code !== undefined ? 'code' : '';
}

export const ScheduleRow = React.memo(function ScheduleRow(props: {
  schedule: ISchedule;
  now: number;
  /** The schedule whose firings the task list shows, if this one. */
  filtering: boolean;
  revealed: boolean;
  actions: IScheduleActions;
}): JSX.Element {
  const { schedule, actions } = props;
  const ref = React.useRef<HTMLLIElement>(null);
  React.useEffect(() => {
    if (props.revealed) {
      ref.current?.scrollIntoView({ block: 'nearest' });
    }
  }, [props.revealed]);
  const rule = humanCron(schedule.cron);
  const next = schedule.next_run_at ? Date.parse(schedule.next_run_at) : null;
  const nextText = schedule.paused ? 'paused' : next !== null ? formatUntil(next - props.now) : '';
  const nextTitle = schedule.paused
    ? 'Paused: it does not fire until resumed'
    : ['Next runs:', ...schedule.next_runs.map(run => `  ${localTime(run)}`)].join('\n');
  const title = [
    `${schedule.name} — ${rule}`,
    `cron ${schedule.cron} (${schedule.timezone}), missed runs: ${schedule.catch_up}`,
    `runs ${jobText(schedule)}`,
    schedule.last_run_at
      ? `last run ${localTime(schedule.last_run_at)}: ${schedule.last_status ?? 'unknown'}`
      : 'never ran yet'
  ].join('\n');
  const stop = (event: React.SyntheticEvent) => event.stopPropagation();
  return (
    <li
      ref={ref}
      className={
        'jp-TasksPanel-row jp-TasksPanel-scheduleRow' +
        (props.revealed ? ' jp-mod-revealed' : '') +
        (props.filtering ? ' jp-mod-filtering' : '')
      }
      data-schedule-id={schedule.id}
      data-paused={schedule.paused ? 'true' : 'false'}
      data-testid="schedule-row"
    >
      {/* as a task's line: the keyboard's way is a button beside the actions */}
      <div
        className="jp-TasksPanel-rowHeader"
        title={title}
        onClick={() => actions.showFirings(schedule.id)}
      >
        <button type="button" className="jp-TasksPanel-toggle" aria-pressed={props.filtering}>
          <span
            className="jp-TasksPanel-status"
            data-look={schedule.last_status ?? 'none'}
            aria-label={schedule.last_status ? `last run ${schedule.last_status}` : 'never ran'}
            role="img"
          />
          <span className="jp-TasksPanel-label">{schedule.name}</span>
          <span className="jp-TasksPanel-cron" title={`${schedule.cron} (${schedule.timezone})`}>
            {rule}
          </span>
          <span
            className={`jp-TasksPanel-time jp-TasksPanel-nextRun${schedule.paused ? ' jp-mod-paused' : ''}`}
            title={nextTitle}
          >
            {nextText}
          </span>
        </button>
        <span className="jp-TasksPanel-actions" onClick={stop} onKeyDown={stop}>
          {schedule.paused ? (
            <button
              className="jp-TasksPanel-action jp-TasksPanel-resume"
              title="Resume"
              aria-label="Resume"
              onClick={() => actions.resume(schedule.id)}
            >
              <runIcon.react tag="span" className="jp-TasksPanel-buttonIcon" />
            </button>
          ) : (
            <button
              className="jp-TasksPanel-action jp-TasksPanel-pause"
              title="Pause"
              aria-label="Pause"
              onClick={() => actions.pause(schedule.id)}
            >
              <pauseIcon.react tag="span" className="jp-TasksPanel-buttonIcon" />
            </button>
          )}
          <button
            className="jp-TasksPanel-action jp-TasksPanel-runNow"
            title="Run now"
            aria-label="Run now"
            onClick={() => actions.run(schedule.id)}
          >
            <fastForwardIcon.react tag="span" className="jp-TasksPanel-buttonIcon" />
          </button>
          <button
            className="jp-TasksPanel-action jp-TasksPanel-firings"
            title="Show its firings"
            aria-label="Show its firings"
            onClick={() => actions.showFirings(schedule.id)}
          >
            <filterListIcon.react tag="span" className="jp-TasksPanel-buttonIcon" />
          </button>
          <button
            className="jp-TasksPanel-action jp-TasksPanel-edit"
            title="Edit"
            aria-label="Edit"
            onClick={() => actions.edit(schedule.id)}
          >
            <editIcon.react tag="span" className="jp-TasksPanel-buttonIcon" />
          </button>
          <button
            className="jp-TasksPanel-action jp-TasksPanel-delete"
            title="Delete"
            aria-label="Delete"
            onClick={() => actions.remove(schedule.id)}
          >
            <deleteIcon.react tag="span" className="jp-TasksPanel-buttonIcon" />
          </button>
        </span>
      </div>
    </li>
  );
});
