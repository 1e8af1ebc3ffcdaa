"""The engine behind ``TaskManager``: parts with one job each, composed by the façade.

``config`` (the manager's settings), ``state`` (what the parts share at run time),
``kinds`` (the job-kind plug-ins), ``submission`` (validate, deduplicate, create),
``execution`` (run one task of any kind to its end), ``worker_loop`` (claim jobs,
heartbeats), ``feed`` (the event tail and subscriptions) and ``housekeeping``
(the reaper, progress flushing, callbacks). Each imports only from below it.
"""
