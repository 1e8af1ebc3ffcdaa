/**
 * Telling a stream of events in few toasts, each event exactly once, however
 * the events are spread in time.
 */

/** What one grouped toast tells: how many events, and the latest (the one it names). */
export interface IToldGroup<T> {
  count: number;
  latest: T;
}

/**
 * Groups events in windows of `windowMs`. The first `singles` events of a
 * window are told one by one at once; the rest wait for the window's end and
 * are told together, which opens the next window with no single ones (so a
 * steady stream is told once per window). A window that ends with nothing
 * waiting closes, and the next event opens a fresh one.
 */
export class ToastWindow<T> {
  constructor(options: ToastWindow.IOptions<T>) {
    this._options = options;
  }

  /** Tell `item` now, or with the others of its window when the window ends. */
  add(item: T): void {
    if (this._timer === null) {
      this._singlesLeft = this._options.singles;
      this._open();
    }
    if (this._singlesLeft > 0) {
      this._singlesLeft -= 1;
      this._options.tellOne(item);
      return;
    }
    this._waiting = { count: (this._waiting?.count ?? 0) + 1, latest: item };
  }

  private _open(): void {
    this._timer = setTimeout(() => this._end(), this._options.windowMs);
  }

  private _end(): void {
    this._timer = null;
    const waiting = this._waiting;
    if (waiting === null) {
      return;
    }
    this._waiting = null;
    this._singlesLeft = 0;
    this._open();
    if (waiting.count === 1) {
      this._options.tellOne(waiting.latest);
    } else {
      this._options.tellGroup(waiting);
    }
  }

  private _options: ToastWindow.IOptions<T>;
  /** The open window's end; null when no window is open. */
  private _timer: ReturnType<typeof setTimeout> | null = null;
  private _singlesLeft = 0;
  /** The events of the open window not told yet. */
  private _waiting: IToldGroup<T> | null = null;
}

export namespace ToastWindow {
  export interface IOptions<T> {
    /** How long a window lasts (for successes, the toast's life). */
    windowMs: number;
    /** How many events of a fresh window are told one by one. */
    singles: number;
    tellOne: (item: T) => void;
    /** Tell two or more events in one toast. */
    tellGroup: (group: IToldGroup<T>) => void;
  }
}
