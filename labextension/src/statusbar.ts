/**
 * The status-bar item: what runs, what waits, and first of all what waits for
 * me. A click goes to the oldest question waiting for me, else opens the panel.
 */
import { Widget } from '@lumino/widgets';

import { TasksModel } from './model';

export class TasksStatusItem extends Widget {
  constructor(options: TasksStatusItem.IOptions) {
    super();
    this._model = options.model;
    this.addClass('jp-TasksStatus');
    this.node.dataset.testid = 'tasks-status';
    this.node.setAttribute('role', 'button');
    this.node.tabIndex = 0;
    this._needs = document.createElement('span');
    this._needs.className = 'jp-TasksStatus-needs';
    this._text = document.createElement('span');
    this._text.className = 'jp-TasksStatus-text';
    this.node.append(this._needs, this._text);
    const click = (): void => {
      const waiting = this._model.waitingForMe;
      if (waiting.length > 0) {
        options.onQuestion(waiting[0].id);
      } else {
        options.onClick();
      }
    };
    this.node.addEventListener('click', click);
    this.node.addEventListener('keydown', event => {
      if (event.key === 'Enter' || event.key === ' ') {
        event.preventDefault();
        click();
      }
    });
    this._model.changed.connect(this._render, this);
    this._render();
  }

  private _render(): void {
    const waiting = this._model.waitingForMe;
    const needs = waiting.length;
    // a task that waits for my answer is said once, as the panel lists it: apart
    // from what runs, though its status is running
    const asking = waiting.filter(task => task.status === 'running').length;
    const running = Math.max(0, this._model.total('running') - asking);
    const queued = this._model.total('queued');
    this.node.dataset.running = String(running);
    this.node.dataset.needs = String(needs);
    this.node.classList.toggle('jp-mod-needs', needs > 0);
    this._needs.textContent = needs > 0 ? `${needs} needs you` : '';
    this._text.textContent =
      queued > 0 ? `Tasks: ${running} running, ${queued} queued` : `Tasks: ${running} running`;
    this.node.title =
      needs > 0
        ? 'A task of yours waits for an answer: click to go to the question'
        : 'Background tasks: click to open the Tasks panel';
  }

  private _model: TasksModel;
  private _needs: HTMLSpanElement;
  private _text: HTMLSpanElement;
}

export namespace TasksStatusItem {
  export interface IOptions {
    model: TasksModel;
    onClick: () => void;
    /** Go to the question of this task. */
    onQuestion: (id: string) => void;
  }
}
