"""Files sources and the command line: a tree comes back with its content,
modes, owners (as root), mtimes and symlinks; exclude patterns hold; the
key file never enters an archive while the config always does; restore
never overwrites without --force; init guards the key; usage errors exit 2.
"""
import filecmp
import os
import stat
import subprocess

from bkutil import archives, repo_files, sk, write_config

ROOT = os.geteuid() == 0


def make_tree(base):
    """Returns {relative path: (mode, mtime_ns, uid, gid)} of what must be
    restored."""
    want = {}

    def f(rel, data, mode, mtime_ns, owner=None):
        p = base / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        if owner and ROOT:
            os.chown(p, *owner)
        os.chmod(p, mode)
        os.utime(p, ns=(mtime_ns, mtime_ns))
        st = os.lstat(p)
        want[rel] = (stat.S_IMODE(st.st_mode), st.st_mtime_ns, st.st_uid,
                     st.st_gid)

    base.mkdir()
    f("index.html", b"<h1>shop</h1>\n", 0o644, 1_700_000_000_123_456_789)
    f("empty", b"", 0o600, 1_600_000_000_000_000_000)
    f("bin/run.sh", b"#!/bin/sh\nexec true\n", 0o750, 1_650_000_000_5)
    f("bin/suid", b"x", 0o4755, 1_650_000_001_000_000_000)
    f("data/big.bin", os.urandom(3 << 20), 0o640, 1_690_000_000_000_000_000,
      owner=(1234, 2345))
    f("data/deep/er/file.txt", b"deep\n" * 1000, 0o444,
      1_690_000_000_000_000_001)
    # Left out by the patterns.
    for rel in ("app.log", "data/old.log", "cache/page.html", "tmp/x.swp"):
        p = base / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text("excluded\n")
    os.symlink("index.html", base / "home.html")
    want["home.html"] = None
    os.chmod(base / "data", 0o710)
    os.utime(base / "data", ns=(1_680_000_000_000_000_000,) * 2)
    os.chmod(base / "data" / "deep", 0o755)
    return want


def test_files_round_trip_keeps_content_modes_mtimes(storekeep_bin, tmp_path):
    tree = tmp_path / "site"
    want = make_tree(tree)
    data_st = os.stat(tree / "data")
    # The key sits inside the tree: it must never be archived.
    cfg = write_config(tmp_path, f"""    - name: site
      interval: 1d
      sources:
        - type: files
          name: www
          paths: [{tree}]
          exclude: ["*.log", "cache", "tmp/*.swp"]
""", key=str(tree / "backup.key"))
    sk(storekeep_bin, cfg, "init", check=0)
    assert stat.S_IMODE(os.stat(tree / "backup.key").st_mode) == 0o600
    r = sk(storekeep_bin, cfg, "run", check=0)
    assert "archive site-" in r.stdout

    (a,) = archives(storekeep_bin, cfg)
    out = tmp_path / "out"
    sk(storekeep_bin, cfg, "restore", a["id"], "--to", out, check=0)
    rtree = out / "www" / str(tree).lstrip("/")
    for rel, meta in want.items():
        p = rtree / rel
        if meta is None:
            assert os.readlink(p) == "index.html"
            continue
        assert filecmp.cmp(tree / rel, p, shallow=False), rel
        st = os.lstat(p)
        got = (stat.S_IMODE(st.st_mode), st.st_mtime_ns, st.st_uid, st.st_gid)
        if ROOT:
            assert got == meta, rel
        else:
            assert got[:2] == meta[:2], rel
    st = os.stat(rtree / "data")
    assert stat.S_IMODE(st.st_mode) == 0o710
    assert st.st_mtime_ns == data_st.st_mtime_ns
    for gone in ("app.log", "data/old.log", "cache", "tmp/x.swp", "backup.key"):
        assert not os.path.lexists(rtree / gone), gone
    assert (rtree / "tmp").is_dir()  # only its *.swp were excluded
    # storekeep's own config is always in.
    assert filecmp.cmp(cfg, out / "_storekeep" / "storekeep.yaml", shallow=False)

    # Never over an existing target without --force.
    r = sk(storekeep_bin, cfg, "restore", a["id"], "--to", out, check=1)
    assert "--force" in r.stderr
    (rtree / "index.html").write_text("changed")
    sk(storekeep_bin, cfg, "restore", "site", "--to", out, "--force", check=0)
    assert (rtree / "index.html").read_bytes() == b"<h1>shop</h1>\n"
    r = sk(storekeep_bin, cfg, "restore", "site-nosuch", "--to", tmp_path / "o2",
           check=1)
    assert "no archive or job named" in r.stderr
    # The repository holds the archive, its lock and the verify state only.
    assert [f for f in repo_files(tmp_path / "repo", "site")
            if not f.endswith(".skb")] == [".lock"]


def test_init_guards_the_key_and_usage_errors(storekeep_bin, tmp_path):
    cfg = write_config(tmp_path, """    - name: j
      interval: 1h
      sources:
        - type: files
          paths: [/etc/hostname]
""")
    key = tmp_path / "backup.key"
    sk(storekeep_bin, cfg, "init", check=0)
    first = key.read_text()
    r = sk(storekeep_bin, cfg, "init", check=1)
    assert "already exists" in r.stderr and "--force" in r.stderr
    assert key.read_text() == first
    # A key others can read is refused, and the message says how to fix it.
    os.chmod(key, 0o644)
    r = sk(storekeep_bin, cfg, "run", check=1)
    assert "chmod 600" in r.stderr
    os.chmod(key, 0o600)
    sk(storekeep_bin, cfg, "run", check=0)
    sk(storekeep_bin, cfg, "init", "--force", check=0)
    assert key.read_text() != first

    for args in ([], ["bogus"], ["restore", "x"], ["list", "a", "b"],
                 ["--nope", "list"]):
        r = sk(storekeep_bin, cfg, *args, check=2)
    r = subprocess.run([storekeep_bin, "backup", "-c", str(tmp_path / "none.yaml"),
                        "list"], capture_output=True, text=True)
    assert r.returncode == 1 and "none.yaml" in r.stderr
    r = sk(storekeep_bin, cfg, "run", "nosuchjob", check=1)
    assert "no job named" in r.stderr
