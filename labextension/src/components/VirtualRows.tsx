/**
 * A list that renders only the rows in (or near) the view of its scrolling
 * ancestor; the rest are stood in for by padding above and below.
 *
 * Rows have one height (`rowHeight`) until rendered; a rendered row's real height
 * (an expanded row with details) is measured and remembered by id, so the
 * padding stays right as rows open and close. Rows carry their id in
 * `data-task-id`.
 */
import * as React from 'react';

/** Pixels rendered beyond the visible part, above and below. */
const OVERSCAN_PX = 400;

/** The row at the top of a scroller's view, where it was, and the scroll offset then. */
interface IAnchor {
  id: string;
  top: number;
  scrollTop: number;
}

/**
 * Per scroller (one for all its lists): the row the user reads at the top of the view.
 * Rows that arrive above it (a task that starts, one that ends into the top of Recent)
 * must not push it away; the browser's own scroll anchoring did not do it reliably for
 * rows that come and go, so the lists keep it in place themselves.
 */
const anchors = new WeakMap<HTMLElement, IAnchor>();

/** The first row (`data-task-id`) not wholly above the scroller's view; null at the very top. */
function anchorOf(scroller: HTMLElement): IAnchor | null {
  const view = scroller.getBoundingClientRect();
  // at the top, new rows show up in view (the list reads like a feed)
  if (scroller.scrollTop <= 0 || view.height === 0) {
    return null;
  }
  for (const row of Array.from(scroller.querySelectorAll<HTMLElement>('[data-task-id]'))) {
    const box = row.getBoundingClientRect();
    if (box.height > 0 && box.bottom > view.top) {
      return { id: row.dataset.taskId!, top: box.top - view.top, scrollTop: scroller.scrollTop };
    }
  }
  return null;
}

/**
 * Scroll back by as much as the anchored row moved since it was noted, unless the view
 * scrolled meanwhile (the user, or a reveal): then the row moved because of that.
 */
function keepAnchor(scroller: HTMLElement): void {
  const anchor = anchors.get(scroller);
  if (anchor && scroller.scrollTop === anchor.scrollTop) {
    const row = scroller.querySelector<HTMLElement>(`[data-task-id="${CSS.escape(anchor.id)}"]`);
    if (row) {
      const moved = row.getBoundingClientRect().top - scroller.getBoundingClientRect().top;
      if (Math.abs(moved - anchor.top) >= 1) {
        scroller.scrollTop += moved - anchor.top;
      }
    }
  }
  noteAnchor(scroller);
}

function noteAnchor(scroller: HTMLElement): void {
  const anchor = anchorOf(scroller);
  if (anchor) {
    anchors.set(scroller, anchor);
  } else {
    anchors.delete(scroller);
  }
}

export interface IVirtualRowsProps<T extends { id: string }> {
  items: readonly T[];
  /** The height of a row not measured yet (the one-line row). */
  rowHeight: number;
  /** The ancestor that scrolls (matched with `closest`). */
  scrollerSelector: string;
  /** An id to bring into view once per `revealNonce`. */
  revealId?: string | null;
  revealNonce?: number;
  className?: string;
  renderItem: (item: T) => JSX.Element;
}

/**
 * The first row that ends below `y`, or the row count when none does (`offsets`
 * are prefix sums of the heights: offsets[0] = 0, offsets[n] = the total).
 */
export function indexAt(offsets: ArrayLike<number>, y: number): number {
  let lo = 0;
  let hi = offsets.length - 1;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (offsets[mid + 1] <= y) {
      lo = mid + 1;
    } else {
      hi = mid;
    }
  }
  return lo;
}

export function VirtualRows<T extends { id: string }>(props: IVirtualRowsProps<T>): JSX.Element {
  const { items, rowHeight } = props;
  const ref = React.useRef<HTMLUListElement>(null);
  const heights = React.useRef(new Map<string, number>());
  const handledReveal = React.useRef(0);
  // a first render shows what fits in a tall window; the layout effect corrects it
  const [range, setRange] = React.useState<[number, number]>([0, Math.min(items.length, 60)]);
  const [measured, setMeasured] = React.useState(0);

  const offsets = React.useMemo(() => {
    const sums = new Float64Array(items.length + 1);
    for (let i = 0; i < items.length; i++) {
      sums[i + 1] = sums[i] + (heights.current.get(items[i].id) ?? rowHeight);
    }
    return sums;
    // heights change in place; `measured` counts the changes
  }, [items, rowHeight, measured]);

  /** The rows that the scroller shows now (plus overscan), from the layout. */
  const compute = React.useCallback((): void => {
    const list = ref.current;
    const scroller = list?.closest<HTMLElement>(props.scrollerSelector);
    if (!list || !scroller) {
      return;
    }
    const top =
      list.getBoundingClientRect().top - scroller.getBoundingClientRect().top - scroller.clientTop;
    const from = -top - OVERSCAN_PX;
    const to = -top + scroller.clientHeight + OVERSCAN_PX;
    const count = items.length;
    const start = count === 0 ? 0 : indexAt(offsets, Math.max(0, from));
    const end = count === 0 ? 0 : Math.min(count, indexAt(offsets, Math.max(0, to)) + 1);
    setRange(old => (old[0] === start && old[1] === end ? old : [start, end]));
  }, [items, offsets, props.scrollerSelector]);

  // keep the row being read in place, measure the rendered rows, bring a revealed row
  // into view, then fit the range
  React.useLayoutEffect(() => {
    const list = ref.current;
    if (!list) {
      return;
    }
    const anchored = list.closest<HTMLElement>(props.scrollerSelector);
    if (anchored) {
      keepAnchor(anchored);
    }
    let changed = false;
    for (const child of Array.from(list.children) as HTMLElement[]) {
      const id = child.dataset.taskId;
      if (!id) {
        continue;
      }
      const height = child.offsetHeight;
      if (height > 0 && height !== (heights.current.get(id) ?? rowHeight)) {
        if (height === rowHeight) {
          heights.current.delete(id);
        } else {
          heights.current.set(id, height);
        }
        changed = true;
      }
    }
    if (changed) {
      setMeasured(n => n + 1);
      return;
    }
    const nonce = props.revealNonce ?? 0;
    if (props.revealId && nonce > handledReveal.current) {
      const index = items.findIndex(item => item.id === props.revealId);
      if (index >= 0) {
        handledReveal.current = nonce;
        const scroller = list.closest<HTMLElement>(props.scrollerSelector);
        if (scroller && (index < range[0] || index >= range[1])) {
          const listTop =
            list.getBoundingClientRect().top -
            scroller.getBoundingClientRect().top +
            scroller.scrollTop;
          scroller.scrollTop = Math.max(0, listTop + offsets[index] - scroller.clientHeight / 3);
        }
      }
    }
    compute();
    if (anchored) {
      noteAnchor(anchored);
    }
  });

  // the latest `compute` for the listeners below, which subscribe once: a new
  // ResizeObserver per render (each render makes a new `compute`) reported at once
  // and cost a forced layout in an extra frame for every model change
  const latestCompute = React.useRef(compute);
  latestCompute.current = compute;

  // follow the scroller's scrolling and resizing (a panel shown after being hidden)
  React.useEffect(() => {
    const scroller = ref.current?.closest<HTMLElement>(props.scrollerSelector);
    if (!scroller) {
      return;
    }
    let frame = 0;
    const schedule = () => {
      noteAnchor(scroller); // the user moved the view: this is what they read now
      if (!frame) {
        frame = requestAnimationFrame(() => {
          frame = 0;
          latestCompute.current();
        });
      }
    };
    scroller.addEventListener('scroll', schedule, { passive: true });
    const observer = typeof ResizeObserver === 'undefined' ? null : new ResizeObserver(schedule);
    observer?.observe(scroller);
    return () => {
      scroller.removeEventListener('scroll', schedule);
      observer?.disconnect();
      cancelAnimationFrame(frame);
    };
  }, [props.scrollerSelector]);

  const start = Math.min(range[0], items.length);
  const end = Math.min(Math.max(range[1], start), items.length);
  const total = offsets[items.length];
  return (
    <ul
      ref={ref}
      className={props.className}
      data-rendered={end - start}
      style={{ paddingTop: offsets[start], paddingBottom: total - offsets[end] }}
    >
      {items.slice(start, end).map(item => props.renderItem(item))}
    </ul>
  );
}
