/**
 * An expanded row: error, fields, lineage, params, result, traceback, artifacts.
 */
import * as React from 'react';

import { TasksAPI } from '../connection';
import {
  attemptText,
  attemptWhyParts,
  formatDuration,
  lateCancelText,
  localTime,
  shortId
} from '../format';
import { stripAnsi } from '../logview';
import { durationMs } from '../time';
import { ITask, isActive } from '../types';
import { Artifacts } from './Artifacts';
import { JsonBlock } from './JsonBlock';
import { IRowActions, rowLook } from './rowLook';

export function Details(props: {
  task: ITask;
  notebook: string | null;
  api: TasksAPI;
  actions: IRowActions;
}): JSX.Element {
  const { task, actions } = props;
  const traceback = task.error?.traceback;
  const took = isActive(task) ? null : durationMs(task);
  const late = lateCancelText(task);
  const earlier = isActive(task);
  return (
    <div className="jp-TasksPanel-details">
      {task.error && task.status !== 'cancelled' && (
        // a cancel is someone's decision, not a failure: the status says it. A job waiting
        // for or running its next attempt keeps the last one's error: it has not failed
        // (in red under "queued" or "running" it read as if it had)
        <div className={earlier ? 'jp-TasksPanel-earlierError' : 'jp-TasksPanel-error'}>
          {earlier && 'Earlier attempt: '}
          {task.error.type}: {stripAnsi(String(task.error.message ?? ''))}
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
          {late && ` (${late})`}
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
        {attemptText(task) !== null && (
          <>
            <dt>attempt</dt>
            <dd className="jp-TasksPanel-attempt">
              {[attemptText(task)!.replace(/^attempt /, ''), ...attemptWhyParts(task)].join(' · ')}
            </dd>
          </>
        )}
        {task.schedule_id && (
          <>
            <dt>schedule</dt>
            <dd>
              <button
                className="jp-TasksPanel-scheduleLink jp-TasksPanel-link"
                title={task.schedule_id}
                onClick={() => actions.showSchedule(task.schedule_id!)}
              >
                {shortId(task.schedule_id)}
              </button>
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
        <pre className={`jp-TasksPanel-traceback${earlier ? ' jp-mod-earlier' : ''}`}>
          {stripAnsi(Array.isArray(traceback) ? traceback.join('\n') : traceback)}
        </pre>
      )}
      <Artifacts task={task} api={props.api} />
    </div>
  );
}
