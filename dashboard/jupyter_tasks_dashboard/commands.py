"""The command palette's own commands (ctrl+p): every action of the dashboard, by name."""

from __future__ import annotations

from functools import partial

from textual.command import DiscoveryHit, Hit, Hits, Provider

from .filters import STATUS_CHOICES
from .ordering import COLUMNS

# (title, action with its arguments, help)
ACTIONS: tuple[tuple[str, str, str], ...] = (
    ("Cancel task", "cancel", "Cancel the selected task (asks first)"),
    ("Rerun task", "rerun", "Run the selected task's spec again as a new task"),
    ("Fork task", "fork", "Edit the selected task's params and run it as a new task"),
    ("Answer question", "answer", "Answer the selected task's pending confirmation"),
    ("Delete task", "delete", "Forget the selected finished task (asks first)"),
    ("Copy task id", "copy_id", "Copy the selected task's full id"),
    ("Schedules", "show_schedules",
     "Show the schedules: pause/resume, run now, delete, their firings"),
    ("Filter tasks", "focus_filter", "Type a label, name or id prefix to search for"),
    ("Clear filters", "clear_filters", "Show every task again (a schedule's firings too)"),
    *((f"Filter status: {label}", f"filter_status('{label}')",
       f"Show {label} tasks only") for label, _ in STATUS_CHOICES),
    ("Sort: next column", "sort", "Cycle the column the table is sorted by"),
    ("Sort: reverse", "reverse_sort", "Flip the sort direction"),
    *((f"Sort by {column}", f"sort_by('{column}')",
       "running first, then queued, then finished" if column == "status"
       else f"Sort the table by {column}") for column in COLUMNS),
    ("Next page", "next_page", "Show the next page of tasks"),
    ("Previous page", "prev_page", "Show the previous page of tasks"),
    ("Reload", "reload", "Read the page and the counts again"),
    ("Quit", "quit", "Leave the dashboard"),
)


class DashboardCommands(Provider):
    """Offers ``ACTIONS``; each runs the app's ``action_*`` as its key binding would."""

    def _run(self, action: str) -> None:
        self.app.run_worker(self.app.run_action(action), group="palette")

    async def discover(self) -> Hits:
        for title, action, help_text in ACTIONS:
            yield DiscoveryHit(title, partial(self._run, action), help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for title, action, help_text in ACTIONS:
            score = matcher.match(title)
            if score > 0:
                yield Hit(score, matcher.highlight(title), partial(self._run, action),
                          help=help_text)
