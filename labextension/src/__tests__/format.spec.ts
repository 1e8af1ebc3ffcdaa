import {
  ERASED,
  attemptWhyParts,
  displayText,
  errorText,
  hasVisibleText,
  lateCancelText,
  notRerunText,
  taskLabel,
  typeInto,
  withShortIds
} from '../format';
import { etaText } from '../time';
import { ITask } from '../types';

function task(fields: Partial<ITask>): ITask {
  return {
    id: '0'.repeat(32),
    kind: 'function',
    name: null,
    label: null,
    status: 'queued',
    error: null,
    progress: null,
    owner: null,
    origin: null,
    confirmation: null,
    created_at: null,
    started_at: null,
    finished_at: null,
    ...fields
  };
}

describe('displayText', () => {
  it('turns bidi overrides, embeddings and isolates into a visible mark', () => {
    // before: '\u202eevil.exe' rendered as 'exe.live' in the panel
    expect(displayText('\u202eevil.exe')).toBe('\ufffdevil.exe');
    expect(displayText('a\u202ab\u202cc\u2066d\u2069')).toBe('a\ufffdb\ufffdc\ufffdd\ufffd');
  });

  it('leaves right-to-left scripts and markup-looking text as written', () => {
    expect(displayText('تقرير שבועי')).toBe('تقرير שבועי');
    expect(displayText('<img src=x onerror=alert(1)> [/b]')).toBe(
      '<img src=x onerror=alert(1)> [/b]'
    );
  });
});

describe('taskLabel', () => {
  it('is the label, else the name, else the fallback, always display text', () => {
    expect(taskLabel(task({ label: '\u202eevil', name: 'n' }), 'f')).toBe('\ufffdevil');
    expect(taskLabel(task({ name: 'greet' }), 'f')).toBe('greet');
    expect(taskLabel(task({}), 'cell')).toBe('cell');
  });
});

describe('notRerunText', () => {
  it('is null for new work, and names the key and the run shown instead', () => {
    expect(notRerunText({ ...task({ label: 'nightly' }), deduplicated: false })).toBeNull();
    expect(notRerunText(task({ label: 'nightly' }))).toBeNull();
    const text = notRerunText({
      ...task({ label: 'nightly', task_key: 'k\u202e1', status: 'running' }),
      deduplicated: true
    });
    expect(text).toBe('Not rerun: "nightly" (key k\ufffd1) is already running; showing that run.');
    expect(
      notRerunText({ ...task({ name: 'n', status: 'queued' }), deduplicated: true }, 'run now')
    ).toBe('Not run now: "n" is already queued; showing that run.');
  });
});

describe('typeInto', () => {
  const typed = (...pieces: string[]) =>
    pieces.reduce((line, piece) => typeInto(line, piece), { raw: '', col: 0 }).raw;

  it('keeps a line without carriage returns as written', () => {
    expect(typed('epoch 1', ': loss 0.5')).toBe('epoch 1: loss 0.5');
  });

  it('shows a bar redrawn in place as its latest state', () => {
    // before: '  0%|   |\r 50%|#  |\r100%|###|' read as all three joined
    expect(typed('  0%|   |', '\r 50%|#  |', '\r100%|###|')).toBe('100%|###|');
  });

  it('overwrites only as far as the new text reaches, as a terminal does', () => {
    expect(typed('downloading 10 of 200\rdone')).toBe('doneloading 10 of 200');
  });

  it('remembers a return at the end of a chunk for the next one', () => {
    expect(typed('step 1\r', 'step 2')).toBe('step 2');
  });

  it('blanks a line erased before its return (ESC [ 2 K)', () => {
    // before: 'clear line:\x1b[2K\rreplaced' read 'replacedne:'
    expect(typed(`clear line:${ERASED}\rreplaced`).trimEnd()).toBe('replaced');
    expect(typed('50%', ERASED, '\r', '100%').trimEnd()).toBe('100%');
  });
});

describe('lateCancelText', () => {
  it('says a cancel came too late only of a task that ended on its own', () => {
    // the engine keeps the end of work that had ended when its cancel arrived, with
    // cancel_requested set: without a word the panel read as if nobody had cancelled
    const late = 'the cancel came after it had ended';
    expect(lateCancelText(task({ status: 'succeeded', cancel_requested: true }))).toBe(late);
    expect(lateCancelText(task({ status: 'failed', cancel_requested: true }))).toBe(late);
    expect(lateCancelText(task({ status: 'cancelled', cancel_requested: true }))).toBeNull();
    expect(lateCancelText(task({ status: 'running', cancel_requested: true }))).toBeNull();
    expect(lateCancelText(task({ status: 'succeeded', cancel_requested: false }))).toBeNull();
    expect(lateCancelText(task({ status: 'succeeded' }))).toBeNull();
  });
});

describe('taskLabel', () => {
  it('passes over a label or name with nothing to see', () => {
    // before: a label of zero-width characters left the row with no name at all
    expect(taskLabel(task({ label: '\u200b\u200d \ufeff', name: 'resize' }), 'job')).toBe('resize');
    expect(taskLabel(task({ label: '\u2060', name: ' ' }), 'job')).toBe('job');
    expect(taskLabel(task({ label: 'a\u200bb', name: 'resize' }), 'job')).toBe('a\u200bb');
    expect(hasVisibleText('\u05e9')).toBe(true);
    expect(hasVisibleText('\u202e')).toBe(false);
  });
});

describe('attemptWhyParts', () => {
  it('says a lost worker once, not "worker lost · 1 worker lost"', () => {
    expect(attemptWhyParts(task({ retry_reason: 'worker lost', lost_attempts: 1 }))).toEqual([
      '1 worker lost'
    ]);
  });

  it('keeps an error reason beside the lost workers', () => {
    expect(
      attemptWhyParts(task({ retry_reason: 'ValueError: bad row', lost_attempts: 2 }))
    ).toEqual(['ValueError: bad row', '2 workers lost']);
  });

  it('keeps the reason when no worker was counted lost', () => {
    expect(attemptWhyParts(task({ retry_reason: 'worker lost', lost_attempts: 0 }))).toEqual([
      'worker lost'
    ]);
    expect(attemptWhyParts(task({}))).toEqual([]);
  });
});

describe('errorText', () => {
  it('says in words that no answer came, not the browser\'s "Failed to fetch"', () => {
    const text = errorText(new TypeError('Failed to fetch'));
    expect(text).toContain('cannot reach the server');
    expect(text).not.toContain('Failed to fetch');
  });

  it("keeps the server's own words, ids shortened", () => {
    expect(errorText(new Error('task 18eecd51e43ea5ee01d54ad2b9acd919 already ended'))).toBe(
      'task d2b9acd919 already ended'
    );
    expect(errorText('plain text')).toBe('plain text');
  });
});

describe('withShortIds', () => {
  it('shortens the task ids in a server message as the panel shows ids', () => {
    expect(withShortIds('task 18eecd51e43ea5ee01d54ad2b9acd919 already ended succeeded')).toBe(
      'task d2b9acd919 already ended succeeded'
    );
  });

  it('leaves other hex and text alone', () => {
    const text = 'checksum deadbeef, 33 chars 18eecd51e43ea5ee01d54ad2b9acd9190';
    expect(withShortIds(text)).toBe(text);
  });
});

describe('etaText', () => {
  const started = task({ status: 'running', started_at: '2026-01-01T00:00:00.000Z' });
  const now = Date.parse('2026-01-01T00:01:40.000Z'); // 100 s in

  it('estimates the time left at the rate so far', () => {
    expect(etaText(started, 0.5, now)).toBe('1m 40s');
  });

  it('says an estimate past a year as such, not as thousands of days', () => {
    // before: a total of 1e300 read "13192d 05h", or worse in e-notation
    expect(etaText(started, 1e-300, now)).toBe('more than a year');
    expect(etaText(started, 1e-6, now)).toBe('more than a year');
    expect(etaText(started, 0.01, now)).toBe('2h 45m');
  });
});
