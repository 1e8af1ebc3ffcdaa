import { formatUntil, humanCron } from '../cron';

describe('humanCron', () => {
  it('says the common rules in words', () => {
    expect(humanCron('0 9 * * 1-5')).toBe('weekdays at 09:00');
    expect(humanCron('30 7 * * *')).toBe('daily at 07:30');
    expect(humanCron('*/15 * * * *')).toBe('every 15 minutes');
    expect(humanCron('* * * * *')).toBe('every minute');
    expect(humanCron('0 * * * *')).toBe('hourly');
    expect(humanCron('0 8 * * 1')).toBe('Mondays at 08:00');
    expect(humanCron('0 10 * * 0,6')).toBe('weekends at 10:00');
    expect(humanCron('0 6 1 * *')).toBe('monthly on day 1 at 06:00');
    expect(humanCron('@daily')).toBe('daily at 00:00');
  });

  it('keeps a rule it cannot say', () => {
    expect(humanCron('5 4 * 2 1-3')).toBe('5 4 * 2 1-3');
    expect(humanCron('0 9-17 * * *')).toBe('0 9-17 * * *');
    expect(humanCron('not a rule')).toBe('not a rule');
  });
});

describe('formatUntil', () => {
  it('rounds up to the minute', () => {
    expect(formatUntil(30_000)).toBe('in 1m');
    expect(formatUntil(3 * 3600_000 + 10 * 60_000)).toBe('in 3h 10m');
    expect(formatUntil(0)).toBe('now');
  });
});
