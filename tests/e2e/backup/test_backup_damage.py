"""Damaged archives: one flipped byte anywhere, a wrong key, a truncated
archive. Each makes verify exit 1 with a message that names the archive
and, when the damage is in a file's data, the file; restore refuses too;
the other archives of the repository stay verifiable.
"""
import os
import shutil

from bkutil import archives, sk, write_config


def two_archives(binary, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "big.bin").write_bytes(os.urandom(1 << 20))
    (data / "small.txt").write_text("hello\n")
    cfg = write_config(tmp_path, f"""    - name: j
      interval: 1h
      sources:
        - type: files
          paths: [{data}]
""")
    sk(binary, cfg, "init", check=0)
    sk(binary, cfg, "run", check=0)
    sk(binary, cfg, "run", check=0)
    arcs = archives(binary, cfg)
    assert len(arcs) == 2
    return cfg, arcs


def flip(path, pos):
    with open(path, "r+b") as f:
        f.seek(pos)
        b = f.read(1)
        f.seek(pos)
        f.write(bytes([b[0] ^ 0x10]))


def test_flipped_byte_anywhere_fails_verify_naming_archive_and_file(
        storekeep_bin, tmp_path):
    cfg, arcs = two_archives(storekeep_bin, tmp_path)
    victim, other = arcs[1], arcs[0]
    path = victim["path"]
    pristine = tmp_path / "pristine.skb"
    shutil.copyfile(path, pristine)
    size = os.path.getsize(path)
    # Header, the data of big.bin (it fills most of the file), the
    # manifest near the end, and the end marker.
    cases = [(10, None), (60, None), (size // 3, "big.bin"),
             (size // 2, "big.bin"), (size - 120, None), (size - 40, None),
             (size - 5, None)]
    for pos, fname in cases:
        flip(path, pos)
        r = sk(storekeep_bin, cfg, "verify", victim["id"], check=1)
        assert victim["id"] in r.stderr, (pos, r.stderr)
        if fname:
            assert fname in r.stderr and "file " in r.stderr, (pos, r.stderr)
        r = sk(storekeep_bin, cfg, "restore", victim["id"], "--to",
               tmp_path / f"out-{pos}", check=1)
        assert victim["id"] in r.stderr
        # Verifying everything: one of two fails, the other is fine.
        r = sk(storekeep_bin, cfg, "verify", check=1)
        assert "1 of 2 archives failed" in r.stderr
        assert f"ok     {other['id']}" in r.stdout
        shutil.copyfile(pristine, path)
    sk(storekeep_bin, cfg, "verify", check=0)
    # A damaged archive shows as such in the list.
    flip(path, 10)
    listed = {a["id"]: a for a in archives(storekeep_bin, cfg)}
    assert "error" in listed[victim["id"]]
    assert "error" not in listed[other["id"]]
    r = sk(storekeep_bin, cfg, "list", check=0)
    assert "UNREADABLE: the header is damaged" in r.stdout


def test_wrong_key_fails_clearly(storekeep_bin, tmp_path):
    cfg, arcs = two_archives(storekeep_bin, tmp_path)
    key = tmp_path / "backup.key"
    shutil.copyfile(key, tmp_path / "right.key")
    sk(storekeep_bin, cfg, "init", "--force", check=0)
    r = sk(storekeep_bin, cfg, "verify", arcs[0]["id"], check=1)
    assert "wrong key" in r.stderr and arcs[0]["id"] in r.stderr
    r = sk(storekeep_bin, cfg, "restore", arcs[0]["id"], "--to",
           tmp_path / "o", check=1)
    assert "wrong key" in r.stderr
    shutil.copyfile(tmp_path / "right.key", key)
    sk(storekeep_bin, cfg, "verify", check=0)


def test_truncated_archive_fails_clearly(storekeep_bin, tmp_path):
    cfg, arcs = two_archives(storekeep_bin, tmp_path)
    path = arcs[1]["path"]
    size = os.path.getsize(path)
    for keep in (size - 1, size // 2, 30):
        with open(path, "r+b") as f:
            f.truncate(keep)
        r = sk(storekeep_bin, cfg, "verify", arcs[1]["id"], check=1)
        assert "truncated" in r.stderr and arcs[1]["id"] in r.stderr, r.stderr
    r = sk(storekeep_bin, cfg, "verify", arcs[0]["id"], check=0)
