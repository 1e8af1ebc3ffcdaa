import { DEFAULT_FILTER, TasksModel, pendingQuestion, relativeNotebookPath } from '../model';
import { ITask, ITaskEvent } from '../types';

/** A scheduler that runs callbacks only when the test says so. */
function manualScheduler() {
  const queue: Array<() => void> = [];
  return {
    schedule: (callback: () => void) => {
      queue.push(callback);
    },
    get pending() {
      return queue.length;
    },
    flush() {
      for (const callback of queue.splice(0)) {
        callback();
      }
    }
  };
}

function makeModel() {
  const scheduler = manualScheduler();
  const model = new TasksModel({ schedule: scheduler.schedule });
  let changes = 0;
  model.changed.connect(() => changes++);
  return { model, scheduler, changes: () => changes };
}

/** Time-ordered 32-hex id: a larger `n` is a newer task. */
function taskId(n: number): string {
  return n.toString(16).padStart(16, '0') + 'ab'.repeat(8);
}

function task(n: number, overrides: Partial<ITask> = {}): ITask {
  return {
    id: taskId(n),
    kind: 'function',
    name: `job_${n}`,
    label: null,
    status: 'queued',
    error: null,
    progress: null,
    owner: 'alice',
    origin: { type: 'rest' },
    confirmation: null,
    created_at: '2026-01-01T00:00:00Z',
    started_at: null,
    finished_at: null,
    ...overrides
  };
}

function event(id: number, type: string, snapshot: ITask): ITaskEvent {
  return { id, type, task_id: snapshot.id, ts: '2026-01-01T00:00:00Z', task: snapshot };
}

/** A plausible server event log: tasks created, started, progressing, ending. */
function serverLog(tasks: number, progressSteps: number): ITaskEvent[] {
  const log: ITaskEvent[] = [];
  let id = 0;
  for (let n = 1; n <= tasks; n++) {
    log.push(event(++id, 'task.created', task(n)));
  }
  for (let n = 1; n <= tasks; n++) {
    log.push(event(++id, 'task.started', task(n, { status: 'running' })));
  }
  for (let step = 1; step <= progressSteps; step++) {
    for (let n = 1; n <= tasks; n++) {
      const progress = { current: step, total: progressSteps, message: null };
      log.push(event(++id, 'task.progress', task(n, { status: 'running', progress })));
    }
  }
  for (let n = 1; n <= tasks; n++) {
    const status = n % 2 ? 'succeeded' : 'failed';
    log.push(event(++id, `task.${status}`, task(n, { status })));
  }
  return log;
}

describe('TasksModel events', () => {
  it('merges the events of a task into its latest snapshot', () => {
    const { model } = makeModel();
    model.applyEvents([
      event(1, 'task.created', task(1)),
      event(2, 'task.started', task(1, { status: 'running' })),
      event(3, 'task.progress', task(1, { status: 'running', progress: { current: 3, total: 10 } }))
    ]);
    expect(model.size).toBe(1);
    expect(model.get(taskId(1))!.status).toBe('running');
    expect(model.get(taskId(1))!.progress).toEqual({ current: 3, total: 10 });
    expect(model.lastEventId).toBe(3);
    expect(model.count('running')).toBe(1);
    expect(model.count('queued')).toBe(0);
  });

  it('ignores events whose id is not above the last one seen', () => {
    const { model } = makeModel();
    const started = event(2, 'task.started', task(1, { status: 'running' }));
    expect(model.applyEvents([event(1, 'task.created', task(1)), started])).toHaveLength(2);
    // A duplicate and an older event must not roll the task back.
    const applied = model.applyEvents([started, event(1, 'task.created', task(1))]);
    expect(applied).toEqual([]);
    expect(model.get(taskId(1))!.status).toBe('running');
    expect(model.lastEventId).toBe(2);
  });

  it('treats unknown event types as snapshot updates', () => {
    const { model } = makeModel();
    model.applyEvents([
      event(1, 'task.created', task(1)),
      event(2, 'task.cancel_requested', task(1, { cancel_requested: true })),
      event(3, 'task.something_new', task(1, { cancel_requested: true, label: 'renamed' }))
    ]);
    expect(model.get(taskId(1))!.cancel_requested).toBe(true);
    expect(model.get(taskId(1))!.label).toBe('renamed');
  });

  it('advances past an event without a snapshot', () => {
    const { model } = makeModel();
    model.applyEvents([{ id: 7, type: 'task.log', task_id: taskId(1), ts: '', task: null }]);
    expect(model.size).toBe(0);
    expect(model.lastEventId).toBe(7);
  });

  it('removes a task on task.deleted and keeps the status counts right', () => {
    const { model } = makeModel();
    model.applyEvents([
      event(1, 'task.created', task(1)),
      event(2, 'task.created', task(2)),
      event(3, 'task.succeeded', task(1, { status: 'succeeded' })),
      event(4, 'task.deleted', task(1, { status: 'succeeded' }))
    ]);
    expect(model.get(taskId(1))).toBeUndefined();
    expect(model.all.map(t => t.id)).toEqual([taskId(2)]);
    expect(model.count('succeeded')).toBe(0);
    expect(model.count('queued')).toBe(1);
    // Deleting an unknown task is harmless.
    model.applyEvents([event(5, 'task.deleted', task(9))]);
    expect(model.size).toBe(1);
  });
});

describe('TasksModel totals', () => {
  it('counts the known tasks until the server counts a longer history', () => {
    const { model, scheduler, changes } = makeModel();
    model.applySnapshots([task(1), task(2, { status: 'running' })], null);
    expect(model.total('queued')).toBe(1);
    expect(model.totalSize).toBe(2);
    scheduler.flush();
    const before = changes();

    // the newest page of 300 queued and 1,800 succeeded tasks
    model.setTotals({ queued: 300, running: 1, succeeded: 1800 });
    expect(model.total('queued')).toBe(300);
    expect(model.total('failed')).toBe(0);
    expect(model.totalSize).toBe(2101);
    expect(model.count('queued')).toBe(1);
    scheduler.flush();
    expect(changes()).toBe(before + 1);

    // the same counts again change nothing
    model.setTotals({ succeeded: 1800, running: 1, queued: 300 });
    expect(scheduler.pending).toBe(0);

    // every task loaded: its own counts again
    model.setTotals(null);
    expect(model.total('queued')).toBe(1);
    expect(model.totalSize).toBe(2);
  });

  it('tells a section how many of its tasks the server holds', () => {
    const { model } = makeModel();
    model.applySnapshots(
      [task(1), task(2), task(3, { status: 'running' }), task(4, { status: 'failed' })],
      null
    );
    expect(model.sectionTotal('queued')).toBeNull(); // every task loaded

    model.setTotals({ queued: 300, running: 1, failed: 40, succeeded: 60 });
    expect(model.sectionTotal('queued')).toBe(300);
    expect(model.sectionTotal('running')).toBeNull(); // all of it is listed
    expect(model.sectionTotal('recent')).toBe(100);
    expect(model.sectionTotal('needs')).toBeNull();

    model.setFilter({ statuses: new Set(['failed']) });
    expect(model.sectionTotal('recent')).toBe(40);
    // a filter the server's counts do not know: the rows are the count
    model.setFilter({ statuses: new Set(), search: 'job' });
    expect(model.sectionTotal('queued')).toBeNull();
  });

  it('gives queue positions only where it holds the whole queue', () => {
    const { model } = makeModel();
    const older = task(1, { queue: 'gpu' });
    const newer = task(2, { queue: 'gpu' });
    const cpu = task(3, { queue: 'cpu' });
    model.applySnapshots([older, newer, cpu], null);
    expect(model.queuePosition(newer)).toEqual({ queue: 'gpu', position: 2, of: 2 });

    // 40 more wait in gpu, older than these: "#2" would be a lie
    model.setTotals({ queued: 43 }, { gpu: 42, cpu: 1 });
    expect(model.queuePosition(newer)).toBeNull();
    expect(model.queuePosition(cpu)).toEqual({ queue: 'cpu', position: 1, of: 1 });

    model.setTotals(null);
    expect(model.queuePosition(newer)).toEqual({ queue: 'gpu', position: 2, of: 2 });
  });
});

describe('TasksModel resume after reconnect', () => {
  const log = serverLog(5, 4);
  const reference = new TasksModel({ schedule: () => undefined });
  reference.applyEvents(log);

  function snapshot(model: TasksModel) {
    return model.all.map(t => ({ ...t }));
  }

  it('gives the same state when the replay overlaps what was already seen', () => {
    const { model } = makeModel();
    const cut = 17;
    model.applyEvents(log.slice(0, cut));
    expect(model.lastEventId).toBe(cut);
    // The server replays from before the cut (e.g. a second tab's cursor).
    const applied = model.applyEvents(log.slice(cut - 6));
    expect(applied.map(e => e.id)).toEqual(log.slice(cut).map(e => e.id));
    expect(snapshot(model)).toEqual(snapshot(reference));
  });

  it('loses nothing when the replay starts exactly after the last seen id', () => {
    const { model } = makeModel();
    for (const cut of [3, 11, 29]) {
      model.applyEvents(log.slice(0, cut));
      // Disconnected: `since` is what the stream sends on reconnect.
      const since = model.lastEventId!;
      model.applyEvents(log.filter(e => e.id > since).slice(0, 4));
    }
    model.applyEvents(log.filter(e => e.id > model.lastEventId!));
    expect(model.lastEventId).toBe(log.length);
    expect(snapshot(model)).toEqual(snapshot(reference));
  });

  it('applies each event exactly once across many reconnects', () => {
    const { model } = makeModel();
    const seen: number[] = [];
    let position = 0;
    while (position < log.length) {
      // Each connection replays a few already seen events, then new ones.
      const start = Math.max(0, position - 3);
      const batch = log.slice(start, position + 7);
      seen.push(...model.applyEvents(batch).map(e => e.id));
      position += 7;
    }
    expect(seen).toEqual(log.map(e => e.id));
  });
});

describe('TasksModel REST snapshots', () => {
  it('adds tasks from a page', () => {
    const { model } = makeModel();
    model.applySnapshots([task(1), task(2, { status: 'running' })], null);
    expect(model.size).toBe(2);
    expect(model.count('running')).toBe(1);
    expect(model.lastEventId).toBeNull();
  });

  it('keeps an event newer than the request over the page', () => {
    const { model } = makeModel();
    model.applyEvents([event(1, 'task.created', task(1))]);
    const asOf = model.lastEventId;
    // While the request is in flight the task starts...
    model.applyEvents([event(2, 'task.started', task(1, { status: 'running' }))]);
    // ...and the page, read a bit earlier, still says queued.
    model.applySnapshots([task(1)], asOf);
    expect(model.get(taskId(1))!.status).toBe('running');
  });

  it('lets the page replace what events said before the request', () => {
    const { model } = makeModel();
    model.applyEvents([event(1, 'task.created', task(1))]);
    model.applySnapshots([task(1, { status: 'running' })], model.lastEventId);
    expect(model.get(taskId(1))!.status).toBe('running');
  });

  it('does not bring back a task deleted while the request was in flight', () => {
    const { model } = makeModel();
    model.applyEvents([event(1, 'task.created', task(1))]);
    const asOf = model.lastEventId;
    model.applyEvents([event(2, 'task.deleted', task(1))]);
    model.applySnapshots([task(1)], asOf);
    expect(model.get(taskId(1))).toBeUndefined();
  });

  it('does not let a page from before the first event override events', () => {
    const { model } = makeModel();
    model.applyEvents([event(5, 'task.succeeded', task(1, { status: 'succeeded' }))]);
    model.applySnapshots([task(1, { status: 'running' }), task(2)], null);
    expect(model.get(taskId(1))!.status).toBe('succeeded');
    expect(model.get(taskId(2))).toBeDefined();
  });
});

describe('TasksModel order and filters', () => {
  function populated() {
    const setup = makeModel();
    setup.model.applySnapshots(
      [
        task(3, { status: 'running', label: 'Train Model', owner: 'alice' }),
        task(1, {
          status: 'failed',
          owner: 'bob',
          origin: { type: 'kernel', kernel_id: 'k', notebook: 'work/analysis.ipynb' }
        }),
        task(2, {
          status: 'succeeded',
          name: 'export_csv',
          origin: { type: 'kernel', kernel_id: 'k', notebook: '/work/analysis.ipynb' }
        }),
        task(4, { status: 'queued', owner: null })
      ],
      null
    );
    return setup;
  }

  const ids = (tasks: readonly ITask[]) => tasks.map(t => t.id);

  it('lists newest first by id', () => {
    const { model } = populated();
    expect(ids(model.all)).toEqual([taskId(4), taskId(3), taskId(2), taskId(1)]);
    expect(ids(model.visible)).toEqual(ids(model.all));
  });

  it('filters by a set of statuses', () => {
    const { model } = populated();
    model.setFilter({ statuses: new Set(['failed', 'succeeded']) });
    expect(ids(model.visible)).toEqual([taskId(2), taskId(1)]);
  });

  it('filters by the current notebook, ignoring a leading slash', () => {
    const { model } = populated();
    model.setFilter({ thisNotebook: true });
    expect(model.visible).toEqual([]);
    model.currentNotebook = './work/analysis.ipynb';
    expect(ids(model.visible)).toEqual([taskId(2), taskId(1)]);
    model.currentNotebook = 'other.ipynb';
    expect(model.visible).toEqual([]);
  });

  it('filters by owner', () => {
    const { model } = populated();
    model.setFilter({ owner: 'bob' });
    expect(ids(model.visible)).toEqual([taskId(1)]);
    expect(model.owners).toEqual(['alice', 'bob']);
  });

  it('searches label, name and id without regard to case', () => {
    const { model } = populated();
    model.setFilter({ search: 'train' });
    expect(ids(model.visible)).toEqual([taskId(3)]);
    model.setFilter({ search: 'EXPORT' });
    expect(ids(model.visible)).toEqual([taskId(2)]);
    model.setFilter({ search: taskId(4).slice(10, 18) });
    expect(ids(model.visible)).toEqual([taskId(4)]);
  });

  it('combines filters and resets to everything', () => {
    const { model } = populated();
    model.currentNotebook = 'work/analysis.ipynb';
    model.setFilter({ thisNotebook: true, statuses: new Set(['failed']), owner: 'bob' });
    expect(ids(model.visible)).toEqual([taskId(1)]);
    model.setFilter(DEFAULT_FILTER);
    expect(model.visible).toHaveLength(4);
  });

  it('moves a task between filtered views when its status changes', () => {
    const { model } = populated();
    model.setFilter({ statuses: new Set(['running']) });
    expect(ids(model.visible)).toEqual([taskId(3)]);
    model.applyEvents([event(1, 'task.succeeded', task(3, { status: 'succeeded' }))]);
    expect(model.visible).toEqual([]);
  });
});

describe('TasksModel change notifications', () => {
  it('coalesces a burst of events into one change per frame', () => {
    const { model, scheduler, changes } = makeModel();
    const log = serverLog(50, 20);
    for (let i = 0; i < log.length; i += 10) {
      model.applyEvents(log.slice(i, i + 10));
    }
    expect(scheduler.pending).toBe(1);
    expect(changes()).toBe(0);
    scheduler.flush();
    expect(changes()).toBe(1);
    expect(model.size).toBe(50);

    model.applyEvents([event(log.length + 1, 'task.created', task(99))]);
    model.setFilter({ search: 'job' });
    expect(scheduler.pending).toBe(1);
    scheduler.flush();
    expect(changes()).toBe(2);
  });

  it('does not signal when nothing was applied', () => {
    const { model, scheduler } = makeModel();
    model.applyEvents([event(1, 'task.created', task(1))]);
    scheduler.flush();
    model.applyEvents([event(1, 'task.created', task(1))]);
    model.applySnapshots([], null);
    expect(scheduler.pending).toBe(0);
  });

  it('computes the sorted view lazily and reuses it until a change', () => {
    const { model } = makeModel();
    model.applyEvents(serverLog(20, 2));
    const first = model.visible;
    expect(model.visible).toBe(first);
    model.applyEvents([event(1000, 'task.created', task(100))]);
    expect(model.visible).not.toBe(first);
    expect(model.visible[0].id).toBe(taskId(100));
  });

  it('stops signalling once disposed', () => {
    const { model, scheduler, changes } = makeModel();
    model.applyEvents([event(1, 'task.created', task(1))]);
    model.dispose();
    scheduler.flush();
    expect(changes()).toBe(0);
    expect(model.isDisposed).toBe(true);
  });

  it('applies a large stream in linear time', () => {
    const { model } = makeModel();
    const log = serverLog(2000, 50);
    const started = Date.now();
    for (let i = 0; i < log.length; i += 100) {
      model.applyEvents(log.slice(i, i + 100));
    }
    const elapsed = Date.now() - started;
    expect(model.size).toBe(2000);
    expect(model.visible).toHaveLength(2000);
    // ~100k events; a sort per event would take far longer than this.
    expect(elapsed).toBeLessThan(3000);
  });
});

describe('identity, notebooks and sections (issue 13)', () => {
  const identity = { owner: 'alice', rootDir: '/srv/project', seesOthers: true };

  it('matches "this notebook" by the path relative to the server root', () => {
    const nb = task(1, { origin: { type: 'kernel', notebook: '/srv/project/work/nb.ipynb' } });
    expect(relativeNotebookPath(nb, '/srv/project/')).toBe('work/nb.ipynb');
    expect(relativeNotebookPath(nb, '/srv/proj')).toBe('srv/project/work/nb.ipynb');
    expect(relativeNotebookPath(task(2), '/srv/project')).toBeNull();
    const { model, scheduler } = makeModel();
    model.identity = identity;
    model.applySnapshots([nb, task(3)], null);
    model.currentNotebook = 'work/nb.ipynb';
    model.setFilter({ thisNotebook: true });
    scheduler.flush();
    expect(model.visible.map(t => t.id)).toEqual([nb.id]);
  });

  it('puts my questions first, queues in claim order, recent by end time', () => {
    const { model } = makeModel();
    model.identity = identity;
    const question = { prompt: 'go?', choices: ['yes'], answer: null, asked_at: 'x' };
    const mine = task(1, { status: 'running', confirmation: question });
    const theirs = task(2, { status: 'running', confirmation: question, owner: 'bob' });
    const low = task(3, { queue: 'q', priority: 0 });
    const high = task(4, { queue: 'q', priority: 5 });
    const early = task(5, { status: 'failed', finished_at: '2026-01-01T00:00:01Z' });
    const late = task(6, { status: 'succeeded', finished_at: '2026-01-01T00:00:09Z' });
    model.applySnapshots([mine, theirs, low, high, early, late], null);
    const s = model.sections;
    expect(s.needs.map(t => t.id)).toEqual([mine.id]);
    expect(s.running.map(t => t.id)).toEqual([theirs.id]);
    expect(s.queued.map(t => t.id)).toEqual([high.id, low.id]);
    expect(model.queuePosition(low)).toEqual({ queue: 'q', position: 2, of: 2 });
    expect(s.recent.map(t => t.id)).toEqual([late.id, early.id]);
    expect(model.waitingForMe.map(t => t.id)).toEqual([mine.id]);
    // answered: no longer waiting
    model.applySnapshots([{ ...mine, confirmation: { ...question, answer: 'yes' } }], null);
    expect(model.waitingForMe).toEqual([]);
    expect(pendingQuestion(late)).toBeNull();
  });
});

describe('reset', () => {
  it('forgets every task and takes events again from the id it is given', () => {
    const { model, scheduler } = makeModel();
    model.applyEvents([event(40, 'task.created', task(1)), event(41, 'task.created', task(2))]);
    model.reset(3);
    scheduler.flush();
    expect(model.all).toHaveLength(0);
    expect(model.lastEventId).toBe(3);
    // ids of the new history are below the old ones: they are applied, not dropped
    expect(model.applyEvents([event(4, 'task.created', task(7))])).toHaveLength(1);
    model.applySnapshots([task(8)], 3);
    expect(model.all.map(t => t.id).sort()).toEqual([taskId(7), taskId(8)].sort());
  });
});
