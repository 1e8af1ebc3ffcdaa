"""What a REST user can make the server read, write or send: artifacts and notebook paths.

Each case was found by trying the server as an attacker would; each failed before its fix.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import nbformat

from tests.server.test_api import assert_problem, finished


async def keep(api: Any, **params: Any) -> dict[str, Any]:
    task = await api.submit({"name": "srv_keep", "params": params})
    return await finished(api, task["id"])


async def test_a_string_kept_as_an_artifact_is_its_text_not_the_file_it_names(
        api: Any, db_path: Path) -> None:
    # before: a str naming an existing file was read, so a task keeping a user's text
    # handed that user the database (every user's tasks) or /etc/passwd
    for text in (str(db_path), "/etc/passwd"):
        done = await keep(api, name="notes.txt", data=text)
        assert done["status"] == "succeeded", done
        got = await api.get(done["id"], "artifacts", "notes.txt")
        assert got.code == 200 and got.body == text.encode()


async def test_a_content_type_with_a_line_break_is_refused_and_an_old_one_still_downloads(
        api: Any, db_path: Path) -> None:
    # before: stored as given, then every download of the artifact was a 500 (tornado
    # refuses the header), for its owner and admins alike
    done = await keep(api, name="crlf.txt", data="hi", content_type="text/plain\r\nX-Injected: 1")
    assert done["status"] == "failed", done
    assert done["error"]["type"] == "ValueError"
    assert "content type" in done["error"]["message"]
    assert (await api.get(done["id"], "artifacts")).json == []
    # a row an earlier version stored: sent as plain bytes, not a 500
    kept = await keep(api, name="old.txt", data="hi", content_type="text/plain")
    with sqlite3.connect(db_path) as conn:
        conn.execute("UPDATE artifacts SET content_type = ? WHERE task_id = ?",
                     ("text/plain\r\nX-Injected: 1", kept["id"]))
    for method in ("GET", "HEAD"):
        got = await api.call(method, kept["id"], "artifacts", "old.txt")
        assert got.code == 200, (method, got.code, got.body[:300])
        assert got.headers["Content-Type"] == "application/octet-stream"
        assert "X-Injected" not in got.headers
    ok = await keep(api, name="ok.txt", data="hi", content_type="text/plain; charset=utf-8")
    got = await api.get(ok["id"], "artifacts", "ok.txt")
    assert got.headers["Content-Type"] == "text/plain; charset=utf-8" and got.body == b"hi"


async def test_an_html_artifact_is_served_sandboxed(api: Any) -> None:
    # before: scripts were off (default-src 'none'), but a form in an HTML report
    # (a notebook job's export_html) could post from the server's origin
    done = await keep(api, name="page.html", data="<form action='https://x.example'></form>")
    got = await api.get(done["id"], "artifacts", "page.html")
    assert got.headers["Content-Type"] == "text/html"
    policy = [d.strip() for d in got.headers["Content-Security-Policy"].split(";")]
    assert "sandbox" in policy and "default-src 'none'" in policy


def write_notebook(path: Path) -> None:
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        "label = 'plain'", metadata={"tags": ["parameters"]})]), path)


async def test_an_output_path_made_hidden_by_its_filling_in_is_refused(
        api: Any, jp_root_dir: Path) -> None:
    # before: ".x/out.ipynb" was refused, but "{label}.ipynb" given label ".x" (or a
    # date format with a dot) was accepted and the job wrote a hidden file
    write_notebook(jp_root_dir / "nb.ipynb")
    before = len((await api.get()).json["tasks"])
    for job in ({"output_path": "{label}.ipynb", "parameters": {"label": ".hidden_by_param"}},
                {"output_path": "{date:.%Y}-date.ipynb"},
                {"output_path": "{folder}/keys", "parameters": {"folder": ".ssh"}}):
        for response in (await api.post(body={"notebook": "nb.ipynb", **job}),
                         await api.post("schedules", body={
                             "name": "n", "cron": "0 3 * * *",
                             "job": {"notebook": "nb.ipynb", **job}})):
            problem = assert_problem(response, 422)
            assert [e["field"] for e in problem["errors"]] in (
                ["output_path"], ["job.output_path"]), problem
            assert "hidden" in problem["detail"], problem
    assert len((await api.get()).json["tasks"]) == before
    # a fork that fills a visible template with a hidden name: refused too
    parent = await api.submit({"notebook": "nb.ipynb", "output_path": "out-{label}.ipynb",
                               "parameters": {"label": "a"}, "queue": "parked"})
    assert (await api.post(parent["id"], "fork",
                           body={"parameters": {"label": "b/../.x"}})).code == 422
    assert_problem(await api.post(parent["id"], "fork",
                                  body={"parameters": {"label": "/../.x"}}), 422)
    plain = await api.post(parent["id"], "fork", body={"parameters": {"label": "b"}})
    assert plain.code == 202, plain.json
    assert not list(jp_root_dir.glob(".*"))


async def test_paths_that_cannot_exist_are_a_4xx_not_a_500(api: Any, jp_root_dir: Path) -> None:
    # before: jupyter_core's is_hidden raised OSError (ENOTDIR, ENAMETOOLONG, ELOOP)
    # and each of these was a 500 "internal error; see the server log"
    write_notebook(jp_root_dir / "nb.ipynb")
    (jp_root_dir / "loopa").symlink_to(jp_root_dir / "loopb")
    (jp_root_dir / "loopb").symlink_to(jp_root_dir / "loopa")
    long_name = "a" * 300 + ".ipynb"
    for job in ({"notebook": "nb.ipynb/x.ipynb"}, {"notebook": long_name}, {"notebook": "loopa"},
                {"notebook": "nb.ipynb", "output_path": long_name},
                {"notebook": "nb.ipynb", "output_path": "{date:%Y" + "x" * 300 + "}.ipynb"},
                {"notebook": "nb.ipynb", "output_path": "nb.ipynb/out.ipynb"}):
        for response in (await api.post(body=job),
                         await api.post("schedules", body={"name": "n", "cron": "0 3 * * *",
                                                           "job": job})):
            assert 400 <= response.code < 500, (job, response.code, response.body[:300])
            assert response.headers["Content-Type"].startswith("application/problem+json")
    for path in ("a" * 300, "nb.ipynb/x", "loopa"):
        assert_problem(await api.get("notebook-parameters", params={"path": path}), 404)


def write_parameters_notebook(path: Path, name: str) -> None:
    notebook = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell(f"{name} = 1")
    cell.metadata["tags"] = ["parameters"]
    notebook.cells.append(cell)
    nbformat.write(notebook, str(path))


async def test_notebook_parameters_reads_the_path_as_given_as_a_submit_does(
        api: Any, jp_root_dir: Path) -> None:
    # before: ?path= lost its spaces, so " report.ipynb" answered for report.ipynb (and
    # named it), while a submit of the same path was a 422 "does not exist"
    write_parameters_notebook(jp_root_dir / "report.ipynb", "alpha")
    write_parameters_notebook(jp_root_dir / " report.ipynb", "beta")
    spaced = await api.get("notebook-parameters", params={"path": " report.ipynb"})
    assert spaced.code == 200 and spaced.json["path"] == " report.ipynb", spaced.json
    assert [p["name"] for p in spaced.json["parameters"]] == ["beta"], spaced.json
    assert_problem(await api.get("notebook-parameters", params={"path": "report.ipynb "}), 404)
    # a link to a hidden folder is served as the contents API serves it: by its own name
    (jp_root_dir / ".hid").mkdir()
    write_parameters_notebook(jp_root_dir / ".hid" / "x.ipynb", "gamma")
    (jp_root_dir / "vis").symlink_to(jp_root_dir / ".hid")
    linked = await api.get("notebook-parameters", params={"path": "vis/x.ipynb"})
    assert linked.code == 200, linked.json
    assert_problem(await api.get("notebook-parameters", params={"path": ".hid/x.ipynb"}), 404)
    submitted = await api.post(body={"notebook": "vis/x.ipynb", "queue": "parked"})
    assert submitted.code == 202, submitted.json
    # and an output_path through that link, judged as the notebook's path is (it was a
    # 422 "hidden": judged by the real path once filled in)
    output = await api.post(body={"notebook": "report.ipynb", "output_path": "vis/out.ipynb",
                                  "queue": "parked"})
    assert output.code == 202, output.json
    hidden = await api.post(body={"notebook": "report.ipynb", "output_path": ".hid/o.ipynb",
                                  "queue": "parked"})
    assert_problem(hidden, 422)
