/**
 * Inline progress: a bar, the percent, and an ETA in the tooltip.
 */
import * as React from 'react';

import { valueText } from '../json';
import { etaText } from '../time';
import { ITask } from '../types';

/** Inline progress: a short bar and the percent; counts, message and ETA in the tooltip. */
export function Progress(props: { task: ITask; now: number }): JSX.Element {
  const { current, total, message } = props.task.progress!;
  const known = typeof total === 'number' && total > 0 && typeof current === 'number';
  const fraction = known ? Math.min(1, Math.max(0, current! / total!)) : 0;
  const percent = Math.floor(fraction * 100);
  const eta = known ? etaText(props.task, fraction, props.now) : null;
  const tip = [
    known ? `${current} of ${total}` : current != null ? `${valueText(current)} done` : 'working',
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
      aria-valuenow={known ? Math.min(total!, Math.max(0, current!)) : undefined}
      aria-valuetext={tip}
    >
      <span className="jp-TasksPanel-progressTrack">
        <span className="jp-TasksPanel-progressBar" style={{ width: `${fraction * 100}%` }} />
      </span>
      <span className="jp-TasksPanel-progressText">
        {/* a stored row may hold anything (a long integer, an object): shown as text,
            never thrown on, which blanked the whole panel */}
        {known ? `${percent}%` : current != null ? shortText(valueText(current)) : ''}
      </span>
    </span>
  );
}

/** At most a dozen characters: the row's label keeps its room. */
function shortText(text: string): string {
  return text.length > 12 ? `${text.slice(0, 11)}…` : text;
}
