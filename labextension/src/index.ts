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
import {
  Clipboard,
  ICommandPalette,
  MainAreaWidget,
  ToolbarButton,
  WidgetTracker
} from '@jupyterlab/apputils';
import { IDefaultFileBrowser } from '@jupyterlab/filebrowser';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { IStatusBar } from '@jupyterlab/statusbar';
import {
  copyIcon,
  deleteIcon,
  editIcon,
  fastForwardIcon,
  filterListIcon,
  pauseIcon,
  refreshIcon,
  runIcon,
  stopIcon
} from '@jupyterlab/ui-components';

import { setupCardRestore } from './cardrestore';
import { TasksAPI, TasksConnection } from './connection';
import { editSchedule, runNotebookAsJob, scheduleNotebook } from './jobdialog';
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
  export const runAsJob = 'jupyter-tasks:run-as-job';
  export const schedule = 'jupyter-tasks:schedule-notebook';
  export const showSchedule = 'jupyter-tasks:show-schedule';
  export const pauseSchedule = 'jupyter-tasks:pause-schedule';
  export const runSchedule = 'jupyter-tasks:run-schedule';
  export const editSchedule = 'jupyter-tasks:edit-schedule';
  export const deleteSchedule = 'jupyter-tasks:delete-schedule';
  export const showFirings = 'jupyter-tasks:show-firings';
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'jupyter-tasks:plugin',
  description: 'Background tasks: live list, progress, logs, cancel and rerun.',
  autoStart: true,
  optional: [
    ILayoutRestorer,
    IStatusBar,
    INotebookTracker,
    ILabShell,
    IDefaultFileBrowser,
    ICommandPalette
  ],
  activate: (
    app: JupyterFrontEnd,
    restorer: ILayoutRestorer | null,
    statusBar: IStatusBar | null,
    notebooks: INotebookTracker | null,
    labShell: ILabShell | null,
    fileBrowser: IDefaultFileBrowser | null,
    palette: ICommandPalette | null
  ): void => {
    const { commands, shell } = app;
    const model = new TasksModel();
    const connection = new TasksConnection({
      model,
      api: new TasksAPI(app.serviceManager.serverSettings)
    });
    const panel = new TasksPanel({
      connection,
      openLog: id => void commands.execute(CommandIDs.openLog, { id }),
      editSchedule: id => void commands.execute(CommandIDs.editSchedule, { id })
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
    addScheduleCommands(app, panel, connection);
    addJobCommands(app, panel, connection, notebooks, fileBrowser);
    // what needs no task row (those act on the row under a context menu): the panel,
    // and the current notebook as a job or a schedule
    for (const command of [CommandIDs.open, CommandIDs.runAsJob, CommandIDs.schedule]) {
      palette?.addItem({ command, category: 'Tasks' });
    }

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
    model.changed.connect(() => notifier.announceWaiting());

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

/** The schedule id of the row the context menu was opened on. */
function scheduleUnderMenu(app: JupyterFrontEnd): string | null {
  const node = app.contextMenuHitTest(
    element =>
      element.classList.contains('jp-TasksPanel-scheduleRow') && !!element.dataset.scheduleId
  );
  return node?.dataset.scheduleId ?? null;
}

/**
 * Schedule actions as commands, in the context menu of a schedule's line. Each
 * takes `id` or the line under the menu.
 */
function addScheduleCommands(
  app: JupyterFrontEnd,
  panel: TasksPanel,
  connection: TasksConnection
): void {
  const { commands, contextMenu, shell } = app;
  const target = (args: { readonly id?: unknown }) => {
    const id = args.id ? String(args.id) : scheduleUnderMenu(app);
    return id ? (connection.schedules.get(id) ?? null) : null;
  };
  commands.addCommand(CommandIDs.showSchedule, {
    label: 'Show Schedule in the Tasks Panel',
    execute: args => {
      shell.activateById(panel.id);
      panel.revealSchedule(String(args.id));
    }
  });
  commands.addCommand(CommandIDs.pauseSchedule, {
    label: args => (target(args)?.paused ? 'Resume Schedule' : 'Pause Schedule'),
    icon: args => (target(args)?.paused ? runIcon : pauseIcon),
    isEnabled: args => !!target(args),
    execute: args => {
      const schedule = target(args);
      if (schedule) {
        panel.pauseSchedule(schedule.id, !schedule.paused);
      }
    }
  });
  commands.addCommand(CommandIDs.runSchedule, {
    label: 'Run Schedule Now',
    icon: fastForwardIcon,
    isEnabled: args => !!target(args),
    execute: args => {
      const schedule = target(args);
      if (schedule) {
        panel.runSchedule(schedule.id);
      }
    }
  });
  commands.addCommand(CommandIDs.showFirings, {
    label: 'Show Its Firings',
    icon: filterListIcon,
    isEnabled: args => !!target(args),
    execute: args => {
      const schedule = target(args);
      if (schedule) {
        shell.activateById(panel.id);
        panel.showFirings(schedule.id);
      }
    }
  });
  commands.addCommand(CommandIDs.editSchedule, {
    label: 'Edit Schedule…',
    icon: editIcon,
    isEnabled: args => !!target(args),
    execute: async args => {
      const schedule = target(args);
      if (schedule) {
        const saved = await editSchedule(connection, schedule);
        if (saved) {
          panel.revealSchedule(saved.id);
        }
      }
    }
  });
  commands.addCommand(CommandIDs.deleteSchedule, {
    label: 'Delete Schedule…',
    icon: deleteIcon,
    isEnabled: args => !!target(args),
    execute: args => {
      const schedule = target(args);
      if (schedule) {
        panel.deleteSchedule(schedule.id);
      }
    }
  });
  const selector = '.jp-TasksPanel-scheduleRow';
  contextMenu.addItem({ command: CommandIDs.showFirings, selector, rank: 1 });
  contextMenu.addItem({ command: CommandIDs.pauseSchedule, selector, rank: 2 });
  contextMenu.addItem({ command: CommandIDs.runSchedule, selector, rank: 3 });
  contextMenu.addItem({ command: CommandIDs.editSchedule, selector, rank: 4 });
  contextMenu.addItem({ command: CommandIDs.deleteSchedule, selector, rank: 5 });
}

/**
 * "Run as job…" and "Schedule…" for a notebook: buttons on every notebook's
 * toolbar (JupyterLab and Notebook 7 alike) and items in the file browser's
 * context menu on `.ipynb` files. Each takes `path`, else the file under the
 * menu, else the current notebook.
 */
function addJobCommands(
  app: JupyterFrontEnd,
  panel: TasksPanel,
  connection: TasksConnection,
  notebooks: INotebookTracker | null,
  fileBrowser: IDefaultFileBrowser | null
): void {
  const { commands, contextMenu, shell } = app;
  const notebookPath = (args: { readonly path?: unknown }): string | null => {
    if (args.path) {
      return String(args.path);
    }
    const listed = app.contextMenuHitTest(element =>
      element.classList.contains('jp-DirListing-item')
    );
    if (listed && fileBrowser) {
      const item = Array.from(fileBrowser.selectedItems()).find(i => i.type === 'notebook');
      if (item) {
        return item.path;
      }
    }
    return notebooks?.currentWidget?.context.path ?? null;
  };
  // a server path has no drive prefix ("RTC:nb.ipynb" in collaborative mode)
  const serverPath = (path: string): string => path.replace(/^[^/:]+:/, '');
  commands.addCommand(CommandIDs.runAsJob, {
    label: 'Run as Job…',
    caption: 'Run this notebook as a background job with parameters',
    // from the palette: only with a notebook to run (the current one)
    isEnabled: args => notebookPath(args) !== null,
    execute: async args => {
      const path = notebookPath(args);
      if (!path) {
        return;
      }
      const task = await runNotebookAsJob(connection, serverPath(path));
      if (task) {
        shell.activateById(panel.id);
        panel.reveal(task.id);
      }
    }
  });
  commands.addCommand(CommandIDs.schedule, {
    label: 'Schedule…',
    caption: 'Run this notebook on a schedule',
    // from the palette: only with a notebook to run (the current one)
    isEnabled: args => notebookPath(args) !== null,
    execute: async args => {
      const path = notebookPath(args);
      if (!path) {
        return;
      }
      const schedule = await scheduleNotebook(connection, serverPath(path));
      if (schedule) {
        shell.activateById(panel.id);
        panel.revealSchedule(schedule.id);
      }
    }
  });
  const selector = '.jp-DirListing-item[data-file-type="notebook"]';
  contextMenu.addItem({ type: 'separator', selector, rank: 60 });
  contextMenu.addItem({ command: CommandIDs.runAsJob, selector, rank: 61 });
  contextMenu.addItem({ command: CommandIDs.schedule, selector, rank: 62 });

  // the notebook's own toolbar, for each notebook opened (Lab and Notebook 7)
  app.docRegistry.addWidgetExtension('Notebook', {
    createNew: (widget: NotebookPanel) => {
      const path = () => widget.context.path;
      const runButton = new ToolbarButton({
        className: 'jp-TasksRunAsJob',
        label: 'Run as job…',
        tooltip: 'Run this notebook as a background job with parameters',
        onClick: () => void commands.execute(CommandIDs.runAsJob, { path: path() })
      });
      const scheduleButton = new ToolbarButton({
        className: 'jp-TasksSchedule',
        label: 'Schedule…',
        tooltip: 'Run this notebook on a schedule',
        onClick: () => void commands.execute(CommandIDs.schedule, { path: path() })
      });
      // after the cell type picker when the toolbar has one, else at the end
      if (!widget.toolbar.insertAfter('cellType', 'jupyter-tasks-run-as-job', runButton)) {
        widget.toolbar.addItem('jupyter-tasks-run-as-job', runButton);
      }
      widget.toolbar.insertAfter(
        'jupyter-tasks-run-as-job',
        'jupyter-tasks-schedule',
        scheduleButton
      );
      return {
        dispose: () => {
          runButton.dispose();
          scheduleButton.dispose();
        },
        get isDisposed() {
          return runButton.isDisposed;
        }
      };
    }
  });
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
