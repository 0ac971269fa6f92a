"""Helpers shared by the backup end-to-end tests (tests/e2e/backup).

Each test writes its own storekeep.yaml with a `backup` section into
tmp_path and drives `storekeep backup -c FILE ...` as an operator would.
"""
import json
import os
import subprocess


POOL = """pools:
  - name: shop
    backends:
      - name: a
        address: 127.0.0.1:9
"""


def write_config(tmp_path, jobs, extra="", key=None, repo=None, name="storekeep.yaml"):
    """jobs: YAML text of the list under backup.jobs (indented by 4)."""
    key = key or str(tmp_path / "backup.key")
    repo = repo or str(tmp_path / "repo")
    text = (POOL + extra + "backup:\n"
            f"  key_file: {key}\n"
            f"  repository: {repo}\n"
            "  jobs:\n" + jobs)
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def sk(binary, cfg, *args, env=None, timeout=120, check=None):
    """Runs `storekeep backup -c cfg args...`; returns the CompletedProcess.
    check: the exit status required (None: any)."""
    e = dict(os.environ)
    e.update(env or {})
    r = subprocess.run([binary, "backup", "-c", cfg] + [str(a) for a in args],
                       capture_output=True, text=True, timeout=timeout, env=e,
                       stdin=subprocess.DEVNULL)
    if check is not None:
        assert r.returncode == check, (
            f"backup {' '.join(map(str, args))}: exit {r.returncode}, want "
            f"{check}\nstdout:\n{r.stdout}\nstderr:\n{r.stderr}")
    return r


def archives(binary, cfg, job=None):
    args = ["list", "--json"] + ([job] if job else [])
    r = sk(binary, cfg, *args, check=0)
    return json.loads(r.stdout)


def source(archive, name):
    for s in archive.get("sources", []):
        if s["name"] == name:
            return s
    raise KeyError(name)


def repo_files(repo, job):
    d = os.path.join(str(repo), job)
    return sorted(os.listdir(d)) if os.path.isdir(d) else []
