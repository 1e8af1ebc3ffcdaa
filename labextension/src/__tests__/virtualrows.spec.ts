import { indexAt } from '../components/VirtualRows';

describe('indexAt', () => {
  // rows of 24, 24, 100 (expanded), 24 px
  const offsets = Float64Array.from([0, 24, 48, 148, 172]);

  it('finds the row under a pixel offset', () => {
    expect(indexAt(offsets, 0)).toBe(0);
    expect(indexAt(offsets, 23.9)).toBe(0);
    expect(indexAt(offsets, 24)).toBe(1);
    expect(indexAt(offsets, 60)).toBe(2);
    expect(indexAt(offsets, 147)).toBe(2);
    expect(indexAt(offsets, 148)).toBe(3);
  });

  it('answers the row count past the end (no row there)', () => {
    expect(indexAt(offsets, 172)).toBe(4);
    expect(indexAt(offsets, 10_000)).toBe(4);
  });
});
