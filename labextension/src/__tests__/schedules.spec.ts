import { SchedulesModel } from '../schedules';
import { ISchedule, ITaskEvent } from '../types';

function schedule(id: string, updated: string, extra: Partial<ISchedule> = {}): ISchedule {
  return {
    id,
    name: `s${id}`,
    owner: 'me',
    cron: '0 9 * * 1-5',
    timezone: 'UTC',
    catch_up: 'once',
    paused: false,
    job: { notebook: 'a.ipynb' },
    next_run_at: null,
    next_runs: [],
    last_run_at: null,
    last_task_id: null,
    last_status: null,
    created_at: `2026-01-0${id}T00:00:00Z`,
    updated_at: updated,
    ...extra
  };
}

function event(id: number, scheduleId: string, value: ISchedule | null): ITaskEvent {
  return {
    id,
    type: 'schedule.changed',
    task_id: null as unknown as string,
    ts: '',
    task: null,
    schedule_id: scheduleId,
    schedule: value
  };
}

describe('SchedulesModel', () => {
  it('lists newest first and follows events', () => {
    const model = new SchedulesModel();
    model.applySnapshot([schedule('1', 'a'), schedule('2', 'a')]);
    expect(model.all.map(s => s.id)).toEqual(['2', '1']);
    model.applyEvent(event(1, '1', schedule('1', 'b', { paused: true })));
    expect(model.get('1')!.paused).toBe(true);
    model.applyEvent(event(2, '2', null));
    expect(model.all.map(s => s.id)).toEqual(['1']);
  });

  it('keeps an event newer than a snapshot read before it', () => {
    const model = new SchedulesModel();
    model.applyEvent(event(1, '1', schedule('1', '2026-02-02', { paused: true })));
    model.applyEvent(event(2, '3', null));
    // the list left before both events: it must neither unpause nor revive
    model.applySnapshot([schedule('1', '2026-02-01'), schedule('3', '2026-02-01')]);
    expect(model.get('1')!.paused).toBe(true);
    expect(model.get('3')).toBeUndefined();
  });

  it("shows its last run's status as that task's own events move it", () => {
    const model = new SchedulesModel();
    const fired = schedule('1', 'a', { last_task_id: 't1', last_status: 'queued' });
    model.applySnapshot([fired, schedule('2', 'a', { last_task_id: 't0' })]);
    let changes = 0;
    model.changed.connect(() => changes++);
    model.noteTask('t1', 'succeeded');
    expect(model.get('1')!.last_status).toBe('succeeded');
    expect(model.get('2')!.last_status).toBeNull(); // another schedule's task: untouched
    model.noteTask('t1', 'succeeded'); // no change, no repaint
    model.noteTask('t9', 'failed'); // no schedule's last run
    expect(changes).toBe(1);
  });
});
