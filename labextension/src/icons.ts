import { LabIcon } from '@jupyterlab/ui-components';

/** A checklist with a clock; `jp-icon3` lets the theme recolour it. */
const TASKS_SVG = `<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 24 24">
  <g class="jp-icon3" fill="#616161">
    <path d="M3 5h2v2H3zM7 5h10v2H7zM3 10h2v2H3zM7 10h6v2H7zM3 15h2v2H3zM7 15h4v2H7z"/>
    <path d="M17.5 11a5.5 5.5 0 1 0 0 11 5.5 5.5 0 0 0 0-11zm0 1.8a3.7 3.7 0 1 1 0 7.4 3.7 3.7 0 0 1 0-7.4zM16.8 14v3.3l2.6 1.5.7-1.1-2-1.2V14z"/>
  </g>
</svg>`;

export const tasksIcon = new LabIcon({ name: 'jupyter-tasks:tasks', svgstr: TASKS_SVG });
