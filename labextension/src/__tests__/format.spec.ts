import { displayText, taskLabel } from '../format';
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
