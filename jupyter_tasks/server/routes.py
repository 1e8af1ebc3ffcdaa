"""The extension's routes: the task handlers and the schedule handlers, in match order."""

from __future__ import annotations

from .handlers import (
    ID,
    ArtifactHandler,
    ArtifactListHandler,
    MeHandler,
    NotFoundHandler,
    OpenAPIHandler,
    RegistryExecuteHandler,
    RegistryItemHandler,
    RegistryListHandler,
    StatsHandler,
    TaskCancelHandler,
    TaskCollectionHandler,
    TaskConfirmHandler,
    TaskForkHandler,
    TaskItemHandler,
    TaskLogsHandler,
    TaskRerunHandler,
    TaskResultHandler,
)
from .schedule_handlers import schedule_handlers


def default_handlers(events_handler: type) -> list[tuple[str, type]]:
    """Routes relative to ``base_url``, most specific first."""
    return [
        (r"/api/tasks", TaskCollectionHandler),
        (r"/api/tasks/registry", RegistryListHandler),
        (r"/api/tasks/registry/(?P<name>[A-Za-z0-9_-]+)", RegistryItemHandler),
        (r"/api/tasks/registry/(?P<name>[A-Za-z0-9_-]+)/execute", RegistryExecuteHandler),
        (r"/api/tasks/stats", StatsHandler),
        (r"/api/tasks/me", MeHandler),
        (r"/api/tasks/openapi\.json", OpenAPIHandler),
        (r"/api/tasks/events", events_handler),
        *schedule_handlers(),
        (rf"/api/tasks/{ID}", TaskItemHandler),
        (rf"/api/tasks/{ID}/result", TaskResultHandler),
        (rf"/api/tasks/{ID}/logs", TaskLogsHandler),
        (rf"/api/tasks/{ID}/cancel", TaskCancelHandler),
        (rf"/api/tasks/{ID}/rerun", TaskRerunHandler),
        (rf"/api/tasks/{ID}/fork", TaskForkHandler),
        (rf"/api/tasks/{ID}/confirm", TaskConfirmHandler),
        (rf"/api/tasks/{ID}/artifacts", ArtifactListHandler),
        (rf"/api/tasks/{ID}/artifacts/(?P<name>.+)", ArtifactHandler),
        (r"/api/tasks/(.*)", NotFoundHandler),
    ]
