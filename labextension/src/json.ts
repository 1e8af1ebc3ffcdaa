/**
 * JSON from the server parsed without rounding integers past 2**53 (a Python result
 * such as 2**80): each is kept as its digits, which `JSON.stringify` writes back whole.
 */

/** What `JSON.rawJSON` makes: a number's source text, written back by `JSON.stringify`. */
interface IRawJSON {
  readonly rawJSON: string;
}

/** The parts of ES2024's JSON that TypeScript's ES2020 library does not declare. */
interface IJSONSource {
  rawJSON?: (text: string) => IRawJSON;
  isRawJSON?: (value: unknown) => value is IRawJSON;
}

const json = JSON as unknown as IJSONSource;

// a run of 16 digits: the shortest integer that can lie past 2**53; text without one
// is parsed without a reviver, which would cost a call per value of a page of tasks
const LONG_DIGITS = /\d{16}/;
const INTEGER = /^-?\d+$/;

function keepLongIntegers(_key: string, value: unknown, context?: { source?: string }): unknown {
  const source = context?.source;
  if (
    typeof value === 'number' &&
    !Number.isSafeInteger(value) &&
    source !== undefined &&
    INTEGER.test(source)
  ) {
    return json.rawJSON!(source);
  }
  return value;
}

/** `JSON.parse`, keeping integers past 2**53 whole where the browser can (Chromium 114+). */
export function parseJson<T>(text: string): T {
  if (!json.rawJSON || !LONG_DIGITS.test(text)) {
    return JSON.parse(text) as T;
  }
  return JSON.parse(text, keepLongIntegers) as T;
}

/** The digits of an integer ``parseJson`` kept whole; null for any other value. */
export function longIntegerText(value: unknown): string | null {
  return json.isRawJSON?.(value) ? (value as IRawJSON).rawJSON : null;
}

/**
 * A stored value as text, whatever it holds: a long integer's digits (``parseJson``
 * keeps those as objects with no prototype, which ``String`` and template strings
 * throw on), JSON for other objects, ``String`` for the rest. Never throws.
 */
export function valueText(value: unknown): string {
  const digits = longIntegerText(value);
  if (digits !== null) {
    return digits;
  }
  if (typeof value === 'object' && value !== null) {
    try {
      return JSON.stringify(value) ?? '';
    } catch {
      return '';
    }
  }
  return String(value);
}
