/**
 * Params or result as JSON, cut at a length the panel can afford.
 */
import * as React from 'react';

/** Longest params/result JSON shown inline. */
const MAX_JSON_CHARS = 4000;

export function JsonBlock(props: { title: string; value: unknown }): JSX.Element {
  let text = JSON.stringify(props.value, null, 2) ?? String(props.value);
  if (text.length > MAX_JSON_CHARS) {
    // not between the two halves of a character outside the BMP (an emoji): its lone
    // first half showed as a broken glyph before the ellipsis
    const high = text.charCodeAt(MAX_JSON_CHARS - 1);
    const cut = high >= 0xd800 && high <= 0xdbff ? MAX_JSON_CHARS - 1 : MAX_JSON_CHARS;
    text = `${text.slice(0, cut)}\n…`;
  }
  return (
    <div className={`jp-TasksPanel-json jp-TasksPanel-${props.title}`}>
      <div className="jp-TasksPanel-jsonTitle">{props.title}</div>
      <pre>{text}</pre>
    </div>
  );
}
