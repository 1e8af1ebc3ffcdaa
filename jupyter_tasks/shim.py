"""Run a job's command as our child and record how it ended in the task's row.

    python -I -S shim.py DB TASK_ID ATTEMPT FD -- ARGV...

Started by ``runners.run_process`` (as a file, never through the package: only
the standard library's os, signal, sys, time and _sqlite3 are imported, to keep
the start-up cheap) as the leader of the job's new process group. ``FD`` is a
socket to the worker: we wait for ``go`` (the worker has recorded our group in
the row), start ARGV, answer ``ok PID\n`` (or ``err ERRNO\n``, when it cannot be
started), wait for it, tell the worker ``peak KIB\n`` (the command has ended),
then write ``exit``, ``ended_at`` and ``peak_memory_mb`` into the row's
``process`` record — one UPDATE guarded by task id, attempt, running status and
our pgid — and end with the same exit code (or signal). DB ``-`` records
nothing: the shim then only measures (see ``runners.ProcessUsage.exit_peak``).

The peak is the child's ``ru_maxrss`` from ``wait4``: the largest resident set of
the child or of any descendant it waited for (one process, not a sum). Linux
counts in it the memory the child had before its exec, which was ours (the spawn
shares our memory until the exec), so a figure not above our own peak at the
spawn (VmHWM: our own memory's high-water mark, not our getrusage figure, which
holds the worker's size from before our own exec) says only "at most that much":
it is sent as 0 (unknown) then.

So a worker killed between the exit and its own write of the task's end leaves
the outcome in the row, and a reaper finishes the task from it instead of
running it again. Nothing is recorded once the group was told to stop (SIGTERM,
SIGINT, SIGHUP: a cancel, a timeout, a memory limit, a reaper): that end is
not the work's own. The worker gives us SIGUSR1 as parent-death signal: an exit
that came before it is recorded as usual; when the work still runs, it has
LOST_GRACE_SECONDS to end on its own (a command whose own child just did the
work may be exiting), and only a clean exit (0) is recorded then — its output
has nowhere to go any more, so a failure may be that; after the grace we
SIGKILL the whole group, as PR_SET_PDEATHSIG on the command did before.
"""

import os
import signal
import sys
import time

BUSY_TIMEOUT_SECONDS = 10.0
GO_LOST = 125  # the worker went away before it let us start: nothing ran
LOST_GRACE_SECONDS = 2.0
NO_DB = "-"

_state = {"child": 0, "status": None, "stop": False, "lost": False, "maxrss": 0,
          "record": True}


def _on_stop(signum, frame):
    if not _state["child"]:  # the work never started: just go
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
    _state["stop"] = True  # the whole group got this signal: the child ends by it


def _on_worker_lost(signum, frame):
    child = _state["child"]
    if _state["status"] is not None:
        return  # it had ended: recorded as usual
    if not child or not _state["record"]:
        # the work never started, or there is no row to record an end into: nothing to
        # wait for, end the group at once as PR_SET_PDEATHSIG on the command would
        os.killpg(0, signal.SIGKILL)
    try:
        pid, status, usage = os.wait4(child, os.WNOHANG)
    except ChildProcessError:
        return  # our wait had just reaped it: it ended first
    if pid:
        _state["status"], _state["maxrss"] = status, usage.ru_maxrss  # record it
        return
    _state["lost"] = True
    signal.signal(signal.SIGALRM, _on_grace_over)
    signal.setitimer(signal.ITIMER_REAL, LOST_GRACE_SECONDS)


def _on_grace_over(signum, frame):
    if _state["status"] is None:
        # cut off from its worker and not ending: end the whole group, us included
        os.killpg(0, signal.SIGKILL)


def _record(db, task_id, attempt, code, peak_kib):
    try:
        import _sqlite3 as sqlite3  # the C module alone: half the import time of sqlite3
    except ImportError:
        import sqlite3

    uri = "file:" + db.replace("%", "%25").replace("?", "%3f").replace("#", "%23") + "?mode=rw"
    conn = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None)
    try:
        conn.execute("PRAGMA synchronous = NORMAL")  # as the store's own connections: no fsync
        conn.execute(
            "UPDATE tasks SET process = json_set(process, '$.exit', ?, '$.ended_at', ?, "
            "'$.peak_memory_mb', ?) "
            "WHERE id = ? AND attempts = ? AND status = 'running' "
            "AND json_extract(process, '$.pgid') = ? AND json_extract(process, '$.exit') IS NULL",
            (code, time.time(), round(peak_kib / 1024, 3) if peak_kib else None, task_id,
             attempt, os.getpgrp()))
    finally:
        conn.close()


def _end_like(code):
    if code >= 0:
        os._exit(code)
    sig = -code
    try:
        signal.signal(sig, signal.SIG_DFL)
    except (OSError, ValueError):
        pass  # SIGKILL, SIGSTOP
    try:
        import resource

        resource.setrlimit(resource.RLIMIT_CORE, (0, resource.getrlimit(resource.RLIMIT_CORE)[1]))
    except (ImportError, OSError, ValueError):
        pass  # a child's core dump is the child's; ours would only be noise
    os.kill(os.getpid(), sig)
    os._exit(128 + sig)


def main(argv):
    db, task_id, attempt, fd = argv[1], argv[2], int(argv[3]), int(argv[4])
    command = argv[6:]
    _state["record"] = db != NO_DB
    os.set_inheritable(fd, False)
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, _on_stop)
    signal.signal(signal.SIGUSR1, _on_worker_lost)
    got = b""
    while len(got) < 2:
        part = os.read(fd, 2 - len(got))
        if not part:
            os._exit(GO_LOST)  # the worker died (or gave up) before recording our group
        got += part  # the worker died (or gave up) before recording our group
    floor = _own_peak_kib()  # the child's ru_maxrss starts from this
    try:
        child = os.posix_spawnp(command[0], command, os.environ,
                                setsigdef=(signal.SIGPIPE, signal.SIGXFSZ))
    except OSError as exc:
        os.write(fd, b"err %d\n" % (exc.errno or 0))
        os._exit(127)
    _state["child"] = child
    _tell(fd, b"ok %d\n" % child)
    while _state["status"] is None:
        try:
            _, status, usage = os.wait4(child, 0)
        except ChildProcessError:
            break  # reaped by _on_worker_lost, which kept the status
        except InterruptedError:
            continue
        if _state["status"] is None:
            _state["status"], _state["maxrss"] = status, usage.ru_maxrss
    told_to_stop = _state["stop"]
    if _state["status"] is None:
        os._exit(1)  # not reachable: the child was reaped by someone else
    code = os.waitstatus_to_exitcode(_state["status"])
    peak_kib = _state["maxrss"] if _state["maxrss"] > floor else 0
    # told before the row is written (which may wait for the database's lock): a stop
    # reaching the worker meanwhile finds the command ended on its own, and lets us end
    _tell(fd, b"peak %d\n" % peak_kib)
    if _state["record"] and not told_to_stop and (code == 0 or not _state["lost"]):
        try:
            _record(db, task_id, attempt, code, peak_kib)
        except Exception:
            pass  # the worker, if alive, still writes the end; else the job is retried
    os.close(fd)
    _end_like(code)


def _own_peak_kib():
    """The high-water mark of our memory, in KiB: what a child spawned now starts from."""
    try:
        with open("/proc/self/status", "rb") as f:
            for line in f:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    import resource

    # elsewhere: our whole ru_maxrss, which may hold our parent's size too (a higher
    # floor only makes more figures unknown, never a wrong one)
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _tell(fd, message):
    try:
        os.write(fd, message)
    except OSError:
        pass  # the worker is gone: SIGUSR1 is on its way


GUARD_POLL_SECONDS = 1.0


def guard(pgid):
    """``shim.py --guard PGID``: end the process group PGID if our worker dies.

    For a group led by something else than a shim (a notebook job's kernel): the
    leader's own PR_SET_PDEATHSIG ends it alone, not what it started. The worker
    gives us SIGUSR1 as parent-death signal; we end once the group is gone (or the
    worker ends us when the run ends).
    """

    def worker_lost(signum, frame):
        try:
            os.killpg(pgid, signal.SIGKILL)
        except OSError:
            pass  # gone already
        os._exit(0)

    signal.signal(signal.SIGUSR1, worker_lost)
    if os.getppid() == 1:  # the worker died before our handler was set
        worker_lost(signal.SIGUSR1, None)
    while True:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            os._exit(0)
        except PermissionError:
            pass  # not ours to check: it still exists
        time.sleep(GUARD_POLL_SECONDS)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--guard"]:
        guard(int(sys.argv[2]))
    main(sys.argv)
