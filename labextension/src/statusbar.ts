/**
 * The status-bar item: how many tasks are running; a click opens the panel.
 */
import { Widget } from '@lumino/widgets';

import { TasksModel } from './model';

export class TasksStatusItem extends Widget {
  constructor(options: TasksStatusItem.IOptions) {
    super();
    this._model = options.model;
    this.addClass('jp-TasksStatus');
    this.node.dataset.testid = 'tasks-status';
    this.node.title = 'Background tasks: click to open the Tasks panel';
    this.node.addEventListener('click', options.onClick);
    this._model.changed.connect(this._render, this);
    this._render();
  }

  private _render(): void {
    const running = this._model.count('running');
    const queued = this._model.count('queued');
    this.node.dataset.running = String(running);
    this.node.textContent =
      queued > 0 ? `Tasks: ${running} running, ${queued} queued` : `Tasks: ${running} running`;
  }

  private _model: TasksModel;
}

export namespace TasksStatusItem {
  export interface IOptions {
    model: TasksModel;
    onClick: () => void;
  }
}
