/**
 * Cron rules and run times said the way people say them ("weekdays at 09:00",
 * "in 5m"). Anything not recognised stays as the raw rule.
 */

const ALIASES: Record<string, string> = {
  '@yearly': '0 0 1 1 *',
  '@annually': '0 0 1 1 *',
  '@monthly': '0 0 1 * *',
  '@weekly': '0 0 * * 0',
  '@daily': '0 0 * * *',
  '@midnight': '0 0 * * *',
  '@hourly': '0 * * * *'
};

const DAY_NAMES = [
  'Sundays',
  'Mondays',
  'Tuesdays',
  'Wednesdays',
  'Thursdays',
  'Fridays',
  'Saturdays'
];
const DAY_ABBREVIATIONS = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'];

function dayNumber(field: string): number | null {
  const index = DAY_ABBREVIATIONS.indexOf(field.toLowerCase());
  if (index >= 0) {
    return index;
  }
  return /^[0-7]$/.test(field) ? Number(field) % 7 : null;
}

function isNumber(field: string): boolean {
  return /^\d{1,2}$/.test(field);
}

function at(minute: string, hour: string): string {
  return `${hour.padStart(2, '0')}:${minute.padStart(2, '0')}`;
}

/** "weekdays at 09:00", "every 15 minutes"; the rule itself when no phrase fits. */
export function humanCron(cron: string): string {
  const rule = ALIASES[cron.trim().toLowerCase()] ?? cron.trim();
  const fields = rule.split(/\s+/);
  if (fields.length !== 5) {
    return cron;
  }
  const [minute, hour, dom, month, dow] = fields;
  const everyDay = dom === '*' && month === '*';
  if (minute === '*' && hour === '*' && everyDay && dow === '*') {
    return 'every minute';
  }
  const stepMinutes = /^\*\/(\d+)$/.exec(minute);
  if (stepMinutes && hour === '*' && everyDay && dow === '*') {
    return `every ${stepMinutes[1]} minutes`;
  }
  if (isNumber(minute) && hour === '*' && everyDay && dow === '*') {
    return minute === '0' ? 'hourly' : `hourly at :${minute.padStart(2, '0')}`;
  }
  const stepHours = /^\*\/(\d+)$/.exec(hour);
  if (isNumber(minute) && stepHours && everyDay && dow === '*') {
    return `every ${stepHours[1]} hours at :${minute.padStart(2, '0')}`;
  }
  if (!isNumber(minute) || !isNumber(hour)) {
    return cron;
  }
  const time = at(minute, hour);
  if (everyDay) {
    if (dow === '*') {
      return `daily at ${time}`;
    }
    if (/^(1-5|mon-fri)$/i.test(dow)) {
      return `weekdays at ${time}`;
    }
    if (/^(0,6|6,0|6,7|sat,sun|sun,sat)$/i.test(dow)) {
      return `weekends at ${time}`;
    }
    const day = dayNumber(dow);
    if (day !== null) {
      return `${DAY_NAMES[day]} at ${time}`;
    }
    return cron;
  }
  if (isNumber(dom) && month === '*' && dow === '*') {
    return `monthly on day ${dom} at ${time}`;
  }
  return cron;
}

/** "in 5m", "in 3h 10m", "in 2d"; "now" when due. */
export function formatUntil(ms: number): string {
  const minutes = Math.ceil(ms / 60_000);
  if (ms <= 0) {
    return 'now';
  }
  if (minutes < 60) {
    return `in ${minutes}m`;
  }
  const hours = Math.floor(minutes / 60);
  if (hours < 24) {
    const rest = minutes % 60;
    return rest ? `in ${hours}h ${String(rest).padStart(2, '0')}m` : `in ${hours}h`;
  }
  return `in ${Math.round(hours / 24)}d`;
}

/** The browser's IANA time zone, the default of a new schedule. */
export function browserTimeZone(): string {
  try {
    return Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';
  } catch {
    return 'UTC';
  }
}
