/**
 * What a task's line shows and can do, shared by the line (`TaskRow`) and its
 * expanded details (`Details`), so each imports this and neither the other.
 */
import { pendingQuestion } from '../model';
import { ITask, ITaskConfirmation, isActive } from '../types';

/** What a task's line and its details can ask the panel to do. */
export interface IRowActions {
  toggle(id: string): void;
  cancel(id: string): void;
  rerun(id: string): void;
  /** Answer the question asked at `askedAt` (not one asked since). */
  confirm(id: string, answer: string, askedAt?: ITaskConfirmation['asked_at']): void;
  openLog(id: string): void;
  reveal(id: string): void;
  /** Show the schedule that fired a task. */
  showSchedule(id: string): void;
  /** True once per reveal: the row that mounts for it scrolls and focuses. */
  takeReveal(nonce: number): boolean;
  /** Whether this task's line keeps the keyboard focus (it was acted on from there). */
  keepsFocus(id: string): boolean;
}

/** What the row's icon shows: the status, or a state within it. */
export function rowLook(task: ITask): string {
  if (isActive(task) && task.cancel_requested) {
    return 'cancelling';
  }
  if (pendingQuestion(task)) {
    return 'question';
  }
  return task.status;
}

/** Words for the looks that are not a status. */
export const LOOK_TEXT: Record<string, string> = {
  cancelling: 'cancelling',
  question: 'waiting for an answer'
};
