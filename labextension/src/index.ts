/**
 * jupyter-tasks for JupyterLab: the Tasks side panel, task log tabs, a
 * status-bar count of running tasks and notifications when one's own tasks end.
 */
import {
  ILayoutRestorer,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { MainAreaWidget, Notification, WidgetTracker } from '@jupyterlab/apputils';
import { DocumentWidget } from '@jupyterlab/docregistry';
import { IStatusBar } from '@jupyterlab/statusbar';
import { Widget } from '@lumino/widgets';

import { TasksAPI, TasksConnection } from './connection';
import { tasksIcon } from './icons';
import { TaskLogView } from './logview';
import { TasksModel } from './model';
import { TasksPanel } from './panel';
import { TasksStatusItem } from './statusbar';
import { ITaskEvent } from './types';

namespace CommandIDs {
  export const open = 'jupyter-tasks:open';
  export const showTask = 'jupyter-tasks:show-task';
  export const openLog = 'jupyter-tasks:open-log';
}

/** Terminal events worth a notification; a cancellation was asked for, so it is not. */
const FINISHED: Record<string, 'success' | 'error'> = {
  'task.succeeded': 'success',
  'task.failed': 'error',
  'task.timeout': 'error',
  'task.oom': 'error',
  'task.interrupted': 'error'
};

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'jupyter-tasks:plugin',
  description: 'Background tasks: live list, progress, logs, cancel and rerun.',
  autoStart: true,
  optional: [ILayoutRestorer, IStatusBar],
  activate: (
    app: JupyterFrontEnd,
    restorer: ILayoutRestorer | null,
    statusBar: IStatusBar | null
  ): void => {
    const { commands, shell } = app;
    const model = new TasksModel();
    const connection = new TasksConnection({
      model,
      api: new TasksAPI(app.serviceManager.serverSettings)
    });
    const currentUser = (): string | null => app.serviceManager.user.identity?.username ?? null;

    const panel = new TasksPanel({
      connection,
      currentUser,
      openLog: id => void commands.execute(CommandIDs.openLog, { id })
    });
    shell.add(panel, 'left', { rank: 700 });

    const logs = new WidgetTracker<MainAreaWidget<TaskLogView>>({
      namespace: 'jupyter-tasks-log'
    });

    commands.addCommand(CommandIDs.open, {
      label: 'Show Tasks Panel',
      icon: tasksIcon,
      execute: () => shell.activateById(panel.id)
    });

    commands.addCommand(CommandIDs.showTask, {
      label: 'Show Task in the Tasks Panel',
      execute: args => {
        shell.activateById(panel.id);
        panel.reveal(String(args.id));
      }
    });

    commands.addCommand(CommandIDs.openLog, {
      label: 'Open Task Log',
      execute: args => {
        const id = String(args.id);
        const existing = logs.find(widget => widget.content.taskId === id);
        if (existing) {
          shell.activateById(existing.id);
          return existing;
        }
        const task = model.get(id);
        const widget = new MainAreaWidget({ content: new TaskLogView({ connection, taskId: id }) });
        widget.id = `jupyter-tasks-log-${id}`;
        widget.title.label = `Log: ${task?.label || task?.name || id.slice(0, 8)}`;
        widget.title.caption = `Log of task ${id}`;
        widget.title.icon = tasksIcon;
        void logs.add(widget);
        shell.add(widget, 'main');
        return widget;
      }
    });

    if (restorer) {
      restorer.add(panel, 'jupyter-tasks-panel');
      void restorer.restore(logs, {
        command: CommandIDs.openLog,
        args: widget => ({ id: widget.content.taskId }),
        name: widget => widget.content.taskId
      });
    }

    trackCurrentNotebook(shell, model);

    connection.eventsApplied.connect((_, event) => notifyFinished(event, currentUser(), commands));

    if (statusBar) {
      statusBar.registerStatusItem('jupyter-tasks:status', {
        item: new TasksStatusItem({ model, onClick: () => shell.activateById(panel.id) }),
        align: 'left',
        rank: 4
      });
    }

    exposeForDebugging({ model, connection, panel });
    connection.start();
  }
};

/** The URL parameter or localStorage key that exposes the model on `window.__jupyterTasks`. */
const DEBUG_FLAG = 'jupyter-tasks-debug';

/**
 * For benchmarks and debugging only: with `?jupyter-tasks-debug` in the page
 * URL or `localStorage['jupyter-tasks-debug'] === '1'`, put the model, the
 * connection and the panel on `window.__jupyterTasks`. Off by default.
 */
function exposeForDebugging(objects: {
  model: TasksModel;
  connection: TasksConnection;
  panel: TasksPanel;
}): void {
  let enabled = false;
  try {
    enabled =
      new URLSearchParams(window.location.search).has(DEBUG_FLAG) ||
      window.localStorage?.getItem(DEBUG_FLAG) === '1';
  } catch {
    enabled = false; // storage can be blocked; debugging stays off
  }
  if (enabled) {
    (window as unknown as { __jupyterTasks: typeof objects }).__jupyterTasks = objects;
  }
}

/**
 * Keep `model.currentNotebook` on the last focused notebook, the way the
 * notebook tracker does: focusing the side panel or another kind of document
 * keeps it, closing the notebook clears it.
 */
function trackCurrentNotebook(shell: JupyterFrontEnd.IShell, model: TasksModel): void {
  let notebook: DocumentWidget | null = null;
  const onDisposed = (widget: Widget): void => {
    if (widget === notebook) {
      notebook = null;
      model.currentNotebook = null;
    }
  };
  const update = (): void => {
    const widget = shell.currentWidget;
    if (
      widget instanceof DocumentWidget &&
      widget !== notebook &&
      widget.context.localPath.endsWith('.ipynb')
    ) {
      notebook = widget;
      widget.disposed.connect(onDisposed);
      model.currentNotebook = widget.context.localPath;
    }
  };
  shell.currentChanged?.connect(update);
  update();
}

function notifyFinished(
  event: ITaskEvent,
  me: string | null,
  commands: JupyterFrontEnd['commands']
): void {
  const kind = FINISHED[event.type];
  const task = event.task;
  if (!kind || !task || me === null || task.owner !== me) {
    return;
  }
  const name = task.label || task.name || task.id.slice(0, 8);
  const message =
    kind === 'success'
      ? `Task "${name}" succeeded.`
      : `Task "${name}" ${task.status}${task.error ? `: ${task.error.message}` : '.'}`;
  const options = {
    // Failures stay until dismissed; they usually need a look.
    autoClose: kind === 'success' ? 5000 : (false as const),
    actions: [
      {
        label: 'Show',
        callback: () => void commands.execute(CommandIDs.showTask, { id: task.id })
      }
    ]
  };
  if (kind === 'success') {
    Notification.success(message, options);
  } else {
    Notification.error(message, options);
  }
}

export default plugin;
