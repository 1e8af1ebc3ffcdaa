/**
 * jupyter-tasks for JupyterLab and Notebook 7: the Tasks side panel, task log
 * tabs, a status-bar count of running tasks and notifications when one's own
 * tasks end. Every token but the app is optional, so the plugin activates in any
 * Jupyter frontend built on JupyterLab's application (Notebook 7 has no status
 * bar and no dock: its log views go to the down area, as its log console does).
 */
import {
  ILabShell,
  ILayoutRestorer,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { Clipboard, MainAreaWidget, WidgetTracker } from '@jupyterlab/apputils';
import { INotebookTracker } from '@jupyterlab/notebook';
import { IStatusBar } from '@jupyterlab/statusbar';
import { copyIcon, refreshIcon, stopIcon } from '@jupyterlab/ui-components';

import { setupCardRestore } from './cardrestore';
import { TasksAPI, TasksConnection } from './connection';
import { tasksIcon } from './icons';
import { TaskLogView } from './logview';
import { TasksModel } from './model';
import { TasksPanel } from './panel';
import { TasksStatusItem } from './statusbar';
import { TaskNotifier } from './notifications';
import { ITask, isActive } from './types';

namespace CommandIDs {
  export const open = 'jupyter-tasks:open';
  export const showTask = 'jupyter-tasks:show-task';
  export const openLog = 'jupyter-tasks:open-log';
  export const cancel = 'jupyter-tasks:cancel';
  export const rerun = 'jupyter-tasks:rerun';
  export const copyId = 'jupyter-tasks:copy-id';
  export const details = 'jupyter-tasks:toggle-details';
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'jupyter-tasks:plugin',
  description: 'Background tasks: live list, progress, logs, cancel and rerun.',
  autoStart: true,
  optional: [ILayoutRestorer, IStatusBar, INotebookTracker, ILabShell],
  activate: (
    app: JupyterFrontEnd,
    restorer: ILayoutRestorer | null,
    statusBar: IStatusBar | null,
    notebooks: INotebookTracker | null,
    labShell: ILabShell | null
  ): void => {
    const { commands, shell } = app;
    const model = new TasksModel();
    const connection = new TasksConnection({
      model,
      api: new TasksAPI(app.serviceManager.serverSettings)
    });
    const panel = new TasksPanel({
      connection,
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
        panel.reveal(String(args.id), { question: !!args.question });
      }
    });

    addRowCommands(app, panel, model);

    commands.addCommand(CommandIDs.openLog, {
      label: 'Open Task Log',
      execute: args => {
        const id = args.id ? String(args.id) : rowUnderMenu(app);
        if (!id) {
          return;
        }
        const existing = logs.find(widget => widget.content.taskId === id);
        if (existing) {
          shell.activateById(existing.id);
          return existing;
        }
        // the view keeps the tab's title (label, or the short id until the task loads)
        const widget = new MainAreaWidget({ content: new TaskLogView({ connection, taskId: id }) });
        widget.id = `jupyter-tasks-log-${id}`;
        void logs.add(widget);
        // Notebook 7's main area holds its one document and drops any other widget
        if (!labShell) {
          widget.addClass('jp-TasksLogArea-down');
        }
        shell.add(widget, labShell ? 'main' : 'down');
        shell.activateById(widget.id);
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

    trackCurrentNotebook(notebooks, model);

    const notifier = new TaskNotifier({
      model,
      showTask: id => void commands.execute(CommandIDs.showTask, { id }),
      showQuestion: id => void commands.execute(CommandIDs.showTask, { id, question: true }),
      openLog: id => void commands.execute(CommandIDs.openLog, { id })
    });
    connection.transitions.connect((_, { event, previous }) => notifier.onEvent(event, previous));

    if (statusBar) {
      statusBar.registerStatusItem('jupyter-tasks:status', {
        item: new TasksStatusItem({
          model,
          onClick: () => shell.activateById(panel.id),
          onQuestion: id => void commands.execute(CommandIDs.showTask, { id, question: true })
        }),
        align: 'left',
        rank: 4
      });
    }

    // a cell task's view comes back under its cell in a reopened notebook (issue 13)
    setupCardRestore(
      app.docRegistry,
      connection,
      id => void commands.execute(CommandIDs.openLog, { id })
    );

    exposeForDebugging({ model, connection, panel });
    connection.start();
  }
};

/** The task id of the row the context menu was opened on. */
function rowUnderMenu(app: JupyterFrontEnd): string | null {
  const node = app.contextMenuHitTest(
    element => element.classList.contains('jp-TasksPanel-row') && !!element.dataset.taskId
  );
  return node?.dataset.taskId ?? null;
}

/**
 * Row actions as commands, in JupyterLab's context menu on a task row (as the
 * Running panel and the file browser have them). Each takes `id` or the row
 * under the menu.
 */
function addRowCommands(app: JupyterFrontEnd, panel: TasksPanel, model: TasksModel): void {
  const { commands, contextMenu } = app;
  const target = (args: { readonly id?: unknown }): ITask | null => {
    const id = args.id ? String(args.id) : rowUnderMenu(app);
    return id ? (model.get(id) ?? null) : null;
  };
  commands.addCommand(CommandIDs.cancel, {
    label: 'Cancel Task',
    icon: stopIcon,
    isEnabled: args => {
      const task = target(args);
      return !!task && isActive(task) && !task.cancel_requested;
    },
    execute: args => {
      const task = target(args);
      if (task) {
        panel.cancel(task.id);
      }
    }
  });
  commands.addCommand(CommandIDs.rerun, {
    label: 'Rerun Task',
    icon: refreshIcon,
    isEnabled: args => {
      const task = target(args);
      return !!task && !isActive(task);
    },
    execute: args => {
      const task = target(args);
      if (task) {
        panel.rerun(task.id);
      }
    }
  });
  commands.addCommand(CommandIDs.details, {
    label: 'Show Task Details',
    execute: args => {
      const task = target(args);
      if (task) {
        panel.reveal(task.id);
      }
    }
  });
  commands.addCommand(CommandIDs.copyId, {
    label: 'Copy Task Id',
    icon: copyIcon,
    execute: args => {
      const task = target(args);
      if (task) {
        Clipboard.copyToSystem(task.id);
      }
    }
  });
  const selector = '.jp-TasksPanel-row';
  contextMenu.addItem({ command: CommandIDs.openLog, selector, rank: 1 });
  contextMenu.addItem({ command: CommandIDs.details, selector, rank: 2 });
  contextMenu.addItem({ command: CommandIDs.cancel, selector, rank: 3 });
  contextMenu.addItem({ command: CommandIDs.rerun, selector, rank: 4 });
  contextMenu.addItem({ command: CommandIDs.copyId, selector, rank: 5 });
}

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
 * Keep `model.currentNotebook` on the notebook tracker's current notebook: the
 * last focused one (focusing the side panel or another kind of document keeps
 * it), the next one when it closes. Without a tracker (an app with no
 * notebooks) "this notebook" matches nothing.
 */
function trackCurrentNotebook(notebooks: INotebookTracker | null, model: TasksModel): void {
  if (!notebooks) {
    return;
  }
  const update = (): void => {
    model.currentNotebook = notebooks.currentWidget?.context.localPath ?? null;
  };
  notebooks.currentChanged.connect(update);
  update();
}

export default plugin;
