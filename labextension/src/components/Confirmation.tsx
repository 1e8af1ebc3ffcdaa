/**
 * A question the task waits on, answered from the panel.
 */
import * as React from 'react';

export function Confirmation(props: {
  prompt: string;
  choices: string[] | null;
  onAnswer: (answer: string) => void;
}): JSX.Element {
  const [text, setText] = React.useState('');
  const choices = props.choices ?? [];
  return (
    <div className="jp-TasksPanel-confirmation" role="group" aria-label="Confirmation">
      <div className="jp-TasksPanel-prompt">{props.prompt}</div>
      {choices.length > 0 ? (
        choices.map(choice => (
          <button
            key={choice}
            className="jp-TasksPanel-answer jp-Button jp-mod-styled jp-mod-accept"
            data-answer={choice}
            title={choice}
            onClick={() => props.onAnswer(choice)}
          >
            {choice}
          </button>
        ))
      ) : (
        <form
          onSubmit={event => {
            event.preventDefault();
            props.onAnswer(text);
          }}
        >
          <input
            className="jp-TasksPanel-answerText jp-mod-styled"
            value={text}
            onChange={event => setText(event.currentTarget.value)}
          />
          <button className="jp-TasksPanel-answer jp-Button jp-mod-styled jp-mod-accept">
            Send
          </button>
        </form>
      )}
    </div>
  );
}
