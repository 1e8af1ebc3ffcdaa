"""The README's first command on a fresh machine, as a normal user.

The command is read from the README itself and run word for word in a copy of
the checkout, in a new virtualenv made from Debian's own ``python3``, by an
unprivileged account (``nobody`` when the tests run as root, which is how a
fresh container starts; the current user otherwise). Only ``--no-browser``, a
port and a token are appended, as ``jupyter tasks lab ARGS`` passes ARGS on.
It then checks what a user would: the server answers as that user, the Tasks
labextension is in the page, a demo task runs, and stopping leaves no process.
"""

from __future__ import annotations

import json
import os
import pwd
import re
import shutil
import signal
import subprocess
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.launcher import free_port
from tests.waiting import eventually_sync

ROOT = Path(__file__).resolve().parents[2]
SYSTEM_PYTHON = Path("/usr/bin/python3")


def readme_first_command() -> str:
    """The first fenced bash line of the README's "The two commands"."""
    text = (ROOT / "README.md").read_text()
    section = text.split("## The two commands", 1)[1]
    return re.search(r"```bash\n(.+?)\n```", section, re.S).group(1).strip()


def unprivileged() -> tuple[list[str], pwd.struct_passwd]:
    """The argv prefix that runs a command as a normal user, and that user."""
    if os.geteuid() != 0:
        return [], pwd.getpwuid(os.geteuid())
    user = pwd.getpwnam("nobody")
    return ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}",
            "--clear-groups", "--"], user


def get_json(url: str, token: str, data: dict | None = None) -> object:
    request = urllib.request.Request(
        url, headers={"Authorization": f"token {token}"},
        data=None if data is None else json.dumps(data).encode(),
        method="GET" if data is None else "POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        body = response.read().decode()
    return json.loads(body) if body.lstrip().startswith(("{", "[")) else body


def copy_checkout(dest: Path) -> None:
    """The files git tracks (and the working tree's edits), as a fresh clone has them."""
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                           cwd=ROOT, check=True, capture_output=True).stdout.split(b"\0")
    for name in filter(None, files):
        source = ROOT / name.decode()
        if source.is_file():
            target = dest / name.decode()
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)


@pytest.mark.timeout(900)
def test_readme_first_command_as_a_normal_user() -> None:
    if not SYSTEM_PYTHON.exists() or not shutil.which("node"):
        pytest.skip("needs the system python3 and node a normal user can run")
    prefix, user = unprivileged()
    command = readme_first_command()
    assert command.startswith("pip install . && jupyter tasks lab"), command

    # not under pytest's tmp_path: its parents are private to the user running the tests
    tmp_path = Path(tempfile.mkdtemp(prefix="jupyter-tasks-first-start-"))
    tmp_path.chmod(0o755)
    home = tmp_path / "home"
    checkout = home / "jupyter-tasks"
    checkout.mkdir(parents=True)
    copy_checkout(checkout)
    if os.geteuid() == 0:
        subprocess.run(["chown", "-R", f"{user.pw_uid}:{user.pw_gid}", str(home)], check=True)

    venv = home / "venv"
    # the machine's settings (certificates, package mirrors) stay; nothing of the
    # test runner's own account or Python does
    env = {name: value for name, value in os.environ.items()
           if not name.startswith(("PYENV", "VIRTUAL_ENV", "PYTHONPATH", "JUPYTER", "PYTEST"))}
    env.update(HOME=str(home), USER=user.pw_name, LOGNAME=user.pw_name,
               PATH=f"{venv}/bin:/usr/local/bin:/usr/bin:/bin")
    subprocess.run([*prefix, str(SYSTEM_PYTHON), "-m", "venv", str(venv)], env=env, cwd=checkout,
                   check=True, capture_output=True)

    port, token = free_port(), "first-start-token"
    log = (tmp_path / "lab.log").open("w")
    lab = subprocess.Popen(
        [*prefix, "bash", "-c", f"{command} --no-browser --port={port} "
                                f"--ServerApp.token={token} --ServerApp.ip=127.0.0.1"],
        cwd=checkout, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    runtime = home / ".local" / "share" / "jupyter" / "runtime"
    try:
        def started() -> str | None:
            assert lab.poll() is None, (tmp_path / "lab.log").read_text()[-4000:]
            # the port asked for may be taken during the minutes the install takes,
            # and the server then moves on: its runtime file says where it is
            for info in runtime.glob("jpserver-*.json"):
                try:
                    return f"http://127.0.0.1:{json.loads(info.read_text())['port']}"
                except (ValueError, KeyError):  # being written
                    return None
            return None

        # the install builds the labextension from source: minutes, not seconds
        base = eventually_sync(started, timeout=840, interval=1.0, what="the server's start")

        def answering() -> object:
            try:
                return get_json(f"{base}/api/tasks/me", token)
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                return None

        me = eventually_sync(answering, timeout=60, interval=0.5, what="the server's answer")
        assert me["owner"] == user.pw_name, me
        assert Path(me["root_dir"]).resolve() == checkout.resolve(), me
        assert "Running as root" not in (tmp_path / "lab.log").read_text()

        page = get_json(f"{base}/lab", token)
        assert '"name": "jupyter-tasks"' in page or '"name":"jupyter-tasks"' in page, \
            "the Tasks labextension is not in the page's federated extensions"

        # the registry's execute waits for the end and answers with it
        done = get_json(f"{base}/api/tasks/registry/greet/execute", token,
                        {"params": {"name": "first start"}})
        assert (done["status"], done["result"]) == ("succeeded", "Hello, first start!"), done
        stored = get_json(f"{base}/api/tasks/{done['task_id']}", token)
        assert stored["owner"] == user.pw_name, stored
    finally:
        os.killpg(lab.pid, signal.SIGTERM)
        try:
            lab.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(lab.pid, signal.SIGKILL)
            lab.wait()
        log.close()

    def gone() -> bool:
        try:
            os.killpg(lab.pid, 0)
        except ProcessLookupError:
            return True
        return False

    eventually_sync(gone, timeout=30, what="every process of the lab's group gone")
    shutil.rmtree(tmp_path, ignore_errors=True)
