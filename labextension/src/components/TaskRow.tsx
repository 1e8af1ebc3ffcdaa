/**
 * One task on one line (status, label, progress, time, actions on hover); its
 * details below when expanded.
 */
import { listIcon, refreshIcon, stopIcon } from '@jupyterlab/ui-components';
import * as React from 'react';

import { TasksAPI } from '../connection';
import { lateCancelText, shortId, taskLabel } from '../format';
import { stripAnsi } from '../logview';
import { pendingQuestion } from '../model';
import { timeText } from '../time';
import { ITask, isActive } from '../types';
import { Confirmation } from './Confirmation';
import { Details } from './Details';
import { Progress } from './Progress';
import { IRowActions, LOOK_TEXT, rowLook } from './rowLook';

export interface IRowProps {
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

export const TaskRow = React.memo(function TaskRow(props: IRowProps): JSX.Element {
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
  // Acted on from the keyboard, the line keeps the focus: its Cancel button is disabled,
  // then it moves to another section (a new element), and the focus fell to the page's
  // body each time, the next Tab starting over from the top of the page
  React.useLayoutEffect(() => {
    if (!actions.keepsFocus(task.id)) {
      return;
    }
    const active = document.activeElement as HTMLButtonElement | null;
    if (!active || active === document.body || !active.isConnected || active.disabled) {
      ref.current
        ?.querySelector<HTMLElement>('.jp-TasksPanel-toggle')
        ?.focus({ preventScroll: true });
    }
  });

  const active = isActive(task);
  const look = rowLook(task);
  const question = pendingQuestion(task);
  const time = timeText(task, props.now);
  const label = taskLabel(task, task.kind);
  const stateText = LOOK_TEXT[look] ?? task.status;
  const late = lateCancelText(task);
  const error =
    task.error && task.status !== 'cancelled'
      ? `${task.error.type}: ${stripAnsi(String(task.error.message ?? ''))}`
      : '';
  const title = [
    `${label} — ${stateText}${late ? ` (${late})` : ''}`,
    // an active task's error is its earlier attempt's (it waits for or runs the next)
    error && active ? `earlier attempt: ${error}` : error,
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
      {/* A click anywhere on the line expands it; the keyboard's way is the toggle button,
          a sibling of the action buttons (inside an element with role=button, a screen
          reader announced the actions as part of its one label). Its click bubbles here. */}
      <div
        className="jp-TasksPanel-rowHeader"
        title={title}
        onClick={() => actions.toggle(task.id)}
      >
        <button type="button" className="jp-TasksPanel-toggle" aria-expanded={expanded}>
          <span
            className="jp-TasksPanel-status"
            data-status={task.status}
            data-look={look}
            aria-label={stateText}
            role="img"
          />
          {/* dir=auto: a right-to-left label is cut at its end, not its start */}
          <span className="jp-TasksPanel-label" dir="auto">
            {label}
          </span>
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
          {/* running only: a job back in the queue (a retry, its worker stopped) kept
              its last attempt's bar, which the next attempt does not start from */}
          {task.status === 'running' && task.progress && <Progress task={task} now={props.now} />}
          {time && (
            <span className="jp-TasksPanel-time" title={time.title}>
              {time.text}
            </span>
          )}
        </button>
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
          onAnswer={answer => actions.confirm(task.id, answer, question.asked_at)}
        />
      )}
      {expanded && (
        <Details task={task} notebook={props.notebook} api={props.api} actions={actions} />
      )}
    </li>
  );
});
