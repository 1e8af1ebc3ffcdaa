/**
 * A task's artifacts, each a download link.
 */
import { Notification } from '@jupyterlab/apputils';
import * as React from 'react';

import { TasksAPI } from '../connection';
import { errorText, formatBytes } from '../format';
import { IArtifact, ITask } from '../types';

export function Artifacts(props: { task: ITask; api: TasksAPI }): JSX.Element | null {
  const { task, api } = props;
  const [items, setItems] = React.useState<IArtifact[] | null>(null);
  const [error, setError] = React.useState<string | null>(null);
  React.useEffect(() => {
    let current = true;
    api.artifacts(task.id).then(
      list => current && (setItems(list), setError(null)),
      (reason: Error) => current && setError(reason.message)
    );
    return () => {
      current = false;
    };
    // A status change is when new artifacts can have appeared.
  }, [api, task.id, task.status]);

  if (error !== null) {
    return <div className="jp-TasksPanel-artifactsError">Artifacts: {error}</div>;
  }
  if (!items || items.length === 0) {
    return null;
  }
  return (
    <ul className="jp-TasksPanel-artifacts">
      {items.map(item => (
        <li key={item.name}>
          <button
            className="jp-TasksPanel-artifact jp-TasksPanel-link"
            data-name={item.name}
            title={`${item.content_type}, sha256 ${item.sha256}`}
            onClick={() => void download(api, task.id, item.name)}
          >
            {item.name}
          </button>
          <span className="jp-TasksPanel-artifactSize">{formatBytes(item.size)}</span>
        </li>
      ))}
    </ul>
  );
}

/** Download through an object URL, because a plain link would not be authenticated. */
async function download(api: TasksAPI, id: string, name: string): Promise<void> {
  try {
    const url = URL.createObjectURL(await api.artifactBlob(id, name));
    const link = document.createElement('a');
    link.href = url;
    link.download = name;
    document.body.appendChild(link);
    link.click();
    link.remove();
    // The browser reads the URL asynchronously after the click.
    setTimeout(() => URL.revokeObjectURL(url), 60_000);
  } catch (error) {
    Notification.error(`Could not download ${name}: ${errorText(error)}`, {
      autoClose: 8000
    });
  }
}
