"""Download and extraction against a real HTTP server on 127.0.0.1 (no mocks).

The archive is built on the fly from generated audio and a few real Speech Commands clips; the
server supports Range requests and can drop the connection mid-body to exercise resuming.
"""

from __future__ import annotations

import hashlib
import http.server
import io
import json
import math
import tarfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import shared_path
from scipy.io import wavfile

from kwstool.data import download as dl
from kwstool.errors import KwsError


# --- a small real HTTP server ------------------------------------------------------------------
class _Server:
    """Serves ``files`` ({"/name": bytes}); logs (path, Range header) of each GET."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.drop_once: set[str] = set()  # paths whose next GET stops after half the body
        self.log: list[tuple[str, str | None]] = []
        self.ignore_range = False
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep test output clean
                pass

            def do_GET(self):
                rng = self.headers.get("Range")
                server.log.append((self.path, rng))
                body = server.files.get(self.path)
                if body is None:
                    self.send_error(404, "Not Found")
                    return
                start = 0
                if rng and not server.ignore_range:
                    start = int(rng.split("=")[1].split("-")[0])
                    if start >= len(body):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(body)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(body) - start))
                self.send_header("Content-Type", "application/gzip")
                self.end_headers()
                payload = body[start:]
                if self.path in server.drop_once:
                    server.drop_once.discard(self.path)
                    self.wfile.write(payload[: len(payload) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                try:
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up early (e.g. it refused the announced size)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = _Server()
    yield s
    s.close()


# --- archive building --------------------------------------------------------------------------
def _wav_bytes(samples: np.ndarray, rate: int = 16000) -> bytes:
    buf = io.BytesIO()
    wavfile.write(buf, rate, samples)
    return buf.getvalue()


def _tone(freq: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(16000) / 16000.0
    x = 8000 * np.sin(2 * math.pi * freq * t) + rng.normal(0, 300, 16000)
    return x.astype(np.int16)


def _tar_gz(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = 1_700_000_000
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _ref_pct(speaker: str) -> float:
    """TF speech_commands' which_set percentage, written out independently of kwstool."""
    h = int(hashlib.sha1(speaker.encode()).hexdigest(), 16)
    return (h % (2**27)) * (100.0 / (2**27 - 1))


def _speakers_by_split(n_each: dict[str, int]) -> dict[str, list[str]]:
    out = {"train": [], "validation": [], "test": []}
    i = 0
    while any(len(out[s]) < n for s, n in n_each.items()):
        spk = f"spk{i:04d}"
        p = _ref_pct(spk)
        s = "validation" if p < 10 else "test" if p < 20 else "train"
        if len(out[s]) < n_each[s]:
            out[s].append(spk)
        i += 1
    return out


SPEAKERS = _speakers_by_split({"train": 4, "validation": 2, "test": 2})


def _archive_members() -> dict[str, bytes]:
    """Official layout, no top folder: yes/ and no/ generated (one clip per speaker and word),
    bed/ real clips as the unknown pool, 20 s of generated noise."""
    members: dict[str, bytes] = {}
    for w, freq in (("yes", 440.0), ("no", 660.0)):
        for k, spk in enumerate(sorted(sum(SPEAKERS.values(), []))):
            members[f"./{w}/{spk}_nohash_0.wav"] = _wav_bytes(_tone(freq + k, k))
    for spk in sorted(sum(SPEAKERS.values(), [])):  # generated unknowns, one per speaker
        members[f"./bird/{spk}_nohash_0.wav"] = _wav_bytes(_tone(1234.0, 99))
    rng = np.random.default_rng(5)
    members["./_background_noise_/hum.wav"] = _wav_bytes(
        rng.normal(0, 200, 20 * 16000).astype(np.int16)
    )
    members["./README.md"] = b"test archive\n"
    return members


@pytest.fixture(scope="module")
def archive_bytes() -> bytes:
    return _tar_gz(_archive_members())


# --- download ----------------------------------------------------------------------------------
def test_known_checksums_come_from_installed_tfds():
    known = dl.known_archives()
    v2 = known["speech_commands_v0.02.tar.gz"]
    assert v2.size == 2428923189
    assert v2.sha256 == "af14739ee7dc311471de98f5f9d2c9191b18aedfe957f4a6ff791c709868ff58"
    assert dl._tfds_checksums_file() is not None
    assert "speech_commands_test_set_v0.02.tar.gz" in known
    assert "speech_commands_v0.01.tar.gz" in known


def test_full_download_is_verified_and_reused(server, tmp_path, archive_bytes):
    server.files["/data/mywords.tar.gz"] = archive_bytes
    sha = hashlib.sha256(archive_bytes).hexdigest()
    url = server.url + "/data/mywords.tar.gz"
    res = dl.download(url, tmp_path, sha256=sha, progress=False)
    assert res.path == tmp_path / "mywords.tar.gz"
    assert res.path.read_bytes() == archive_bytes
    assert (res.sha256, res.verified, res.downloaded, res.resumed_from) == (sha, True, True, 0)
    assert not (tmp_path / "mywords.tar.gz.part").exists()
    assert server.log == [("/data/mywords.tar.gz", None)]
    again = dl.download(url, tmp_path, sha256=sha, progress=False)
    assert (again.downloaded, again.sha256) == (False, sha)
    assert len(server.log) == 1  # no second request


def test_dropped_connection_is_resumed_with_range(server, tmp_path, archive_bytes):
    server.files["/a.tar.gz"] = archive_bytes
    server.drop_once.add("/a.tar.gz")
    res = dl.download(
        server.url + "/a.tar.gz",
        tmp_path,
        sha256=hashlib.sha256(archive_bytes).hexdigest(),
        progress=False,
    )
    assert res.path.read_bytes() == archive_bytes
    half = len(archive_bytes) // 2
    assert server.log == [("/a.tar.gz", None), ("/a.tar.gz", f"bytes={half}-")]


def test_interrupted_download_resumes_on_next_run(server, tmp_path, archive_bytes):
    server.files["/a.tar.gz"] = archive_bytes
    server.drop_once.add("/a.tar.gz")
    url = server.url + "/a.tar.gz"
    sha = hashlib.sha256(archive_bytes).hexdigest()
    with pytest.raises(KwsError, match=r"interrupted at \d+ bytes.*re-run to resume"):
        dl.download(url, tmp_path, sha256=sha, progress=False, retries=0)
    part = tmp_path / "a.tar.gz.part"
    half = len(archive_bytes) // 2
    assert part.stat().st_size == half
    assert not (tmp_path / "a.tar.gz").exists()
    res = dl.download(url, tmp_path, sha256=sha, progress=False)
    assert res.resumed_from == half
    assert res.path.read_bytes() == archive_bytes
    assert server.log[-1] == ("/a.tar.gz", f"bytes={half}-")
    assert not part.exists()


def test_complete_part_file_is_finished_without_refetching(server, tmp_path, archive_bytes):
    server.files["/a.tar.gz"] = archive_bytes
    (tmp_path / "a.tar.gz.part").write_bytes(archive_bytes)  # killed just before the rename
    res = dl.download(
        server.url + "/a.tar.gz",
        tmp_path,
        sha256=hashlib.sha256(archive_bytes).hexdigest(),
        progress=False,
    )
    assert res.path.read_bytes() == archive_bytes and res.resumed_from == len(archive_bytes)
    assert server.log == [("/a.tar.gz", f"bytes={len(archive_bytes)}-")]  # answered 416


def test_server_ignoring_range_restarts_cleanly(server, tmp_path, archive_bytes):
    server.files["/a.tar.gz"] = archive_bytes
    (tmp_path / "a.tar.gz.part").write_bytes(archive_bytes[:1000])
    server.ignore_range = True
    res = dl.download(
        server.url + "/a.tar.gz",
        tmp_path,
        sha256=hashlib.sha256(archive_bytes).hexdigest(),
        progress=False,
    )
    assert res.path.read_bytes() == archive_bytes and res.resumed_from == 0


def test_checksum_mismatch_keeps_nothing(server, tmp_path, archive_bytes):
    server.files["/a.tar.gz"] = archive_bytes
    with pytest.raises(
        KwsError,
        match=r"has sha256 [0-9a-f]{64}, expected 0{64}; the download "
        r"was deleted",
    ):
        dl.download(server.url + "/a.tar.gz", tmp_path, sha256="0" * 64, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_official_name_with_wrong_content_is_refused(server, tmp_path, archive_bytes):
    server.files["/speech_commands_v0.02.tar.gz"] = archive_bytes
    with pytest.raises(KwsError, match="official speech_commands_v0.02.tar.gz has 2428923189"):
        dl.download(server.url + "/speech_commands_v0.02.tar.gz", tmp_path, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_http_error_is_one_line(server, tmp_path):
    with pytest.raises(KwsError, match=r"HTTP 404 .*check the URL"):
        dl.download(server.url + "/missing.tar.gz", tmp_path, progress=False)


def test_unreachable_server_is_one_line(tmp_path):
    import socket

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(KwsError, match=r"cannot connect .*pass its path as --source"):
        dl.download(f"http://127.0.0.1:{port}/a.tar.gz", tmp_path, retries=1, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_bad_sha256_option(tmp_path):
    with pytest.raises(KwsError, match="not a sha256 hex digest"):
        dl.download("http://127.0.0.1:9/a.tar.gz", tmp_path, sha256="abc", progress=False)


def test_free_space_check(tmp_path):
    with pytest.raises(KwsError, match=r"needs .* but only .* is free"):
        dl.check_free_space(tmp_path, 1 << 60, "testing")


# --- extraction --------------------------------------------------------------------------------
def _evil_tar(path: Path, kind: str) -> str:
    """Write a tar.gz holding one good file and one bad member; return the bad member's name."""
    with tarfile.open(path, "w:gz") as tar:
        good = tarfile.TarInfo("yes/ok_nohash_0.wav")
        data = _wav_bytes(_tone(440, 1))
        good.size = len(data)
        tar.addfile(good, io.BytesIO(data))
        if kind == "dotdot":
            bad = tarfile.TarInfo("../evil")
            bad.size = 4
            tar.addfile(bad, io.BytesIO(b"evil"))
        elif kind == "absolute":
            bad = tarfile.TarInfo("/tmp/evil_absolute")
            bad.size = 4
            tar.addfile(bad, io.BytesIO(b"evil"))
        elif kind == "symlink":
            bad = tarfile.TarInfo("yes/link.wav")
            bad.type = tarfile.SYMTYPE
            bad.linkname = "../../evil"
            tar.addfile(bad)
        elif kind == "hardlink":
            bad = tarfile.TarInfo("yes/hard.wav")
            bad.type = tarfile.LNKTYPE
            bad.linkname = "yes/ok_nohash_0.wav"
            tar.addfile(bad)
        elif kind == "device":
            bad = tarfile.TarInfo("yes/dev")
            bad.type = tarfile.CHRTYPE
            bad.devmajor, bad.devminor = 1, 3
            tar.addfile(bad)
        return bad.name


@pytest.mark.parametrize(
    "kind,why",
    [
        ("dotdot", "has a '..' path component"),
        ("absolute", "has an absolute path"),
        ("symlink", "is a symbolic link"),
        ("hardlink", "is a hard link"),
        ("device", "is a device file"),
    ],
)
def test_unsafe_members_are_rejected(tmp_path, kind, why):
    work = tmp_path / "work"
    work.mkdir()
    archive = work / "evil.tar.gz"
    name = _evil_tar(archive, kind)
    target = work / "out" / "evil"
    with pytest.raises(KwsError) as err:
        dl.extract_tar(archive, target, progress=False)
    msg = str(err.value)
    assert f"member {name!r} {why}" in msg and "\n" not in msg
    assert not target.exists()
    assert [p.name for p in (work / "out").iterdir()] == []  # no partial folder left
    assert not (work / "evil").exists() and not (work / "out" / "evil").exists()
    assert not Path("/tmp/evil_absolute").exists()


def test_truncated_archive_is_reported(tmp_path, archive_bytes):
    archive = tmp_path / "cut.tar.gz"
    archive.write_bytes(archive_bytes[: len(archive_bytes) // 2])
    with pytest.raises(KwsError, match="truncated or damaged"):
        dl.extract_tar(archive, tmp_path / "cut", progress=False)
    assert not (tmp_path / "cut").exists()


def test_extraction_is_done_once(tmp_path, archive_bytes):
    archive = tmp_path / "mywords.tar.gz"
    archive.write_bytes(archive_bytes)
    root, rec = dl.ensure_extracted(archive, tmp_path / "mywords", progress=False)
    assert root == tmp_path / "mywords"
    assert rec["sha256"] == hashlib.sha256(archive_bytes).hexdigest() and not rec["verified"]
    f = root / "yes" / f"{SPEAKERS['train'][0]}_nohash_0.wav"
    assert f.read_bytes() == _archive_members()[f"./yes/{f.name}"]
    before = f.stat().st_mtime_ns
    time.sleep(0.01)
    root2, _ = dl.ensure_extracted(archive, tmp_path / "mywords", progress=False)
    assert root2 == root and f.stat().st_mtime_ns == before
    assert json.loads((root / dl.MARKER).read_text())["archive"] == "mywords.tar.gz"


# --- prepare from a URL, end to end -------------------------------------------------------------
def test_prepare_from_url_end_to_end(server, tmp_path, archive_bytes):
    from kwstool.core.frontend import compute
    from kwstool.data import load_prepared, prepare

    members = _archive_members()
    # add two real Speech Commands clips to the unknown pool
    mini = shared_path("speech_commands_mini")
    real = sorted((mini / "bed").glob("*.wav"))[:2]
    for p in real:
        members[f"./bed/{p.name}"] = p.read_bytes()
    data = _tar_gz(members)
    server.files["/mywords.tar.gz"] = data
    sha = hashlib.sha256(data).hexdigest()
    url = server.url + "/mywords.tar.gz"
    out, downloads = tmp_path / "prepared", tmp_path / "downloads"

    res = prepare(url, out, words="yes,no", download_dir=downloads, sha256=sha, progress=False)
    assert res.source == url and res.source_kind == "folders" and not res.cached  # 4 words
    assert res.labels == ["_silence_", "_unknown_", "yes", "no"]
    n = {s: len(v) for s, v in SPEAKERS.items()}  # one yes and one no clip per speaker
    for s in ("train", "validation", "test"):
        per = res.splits[s]["per_class"]
        known = 2 * n[s]
        want = math.ceil(known * 0.10)
        assert (per["yes"], per["no"]) == (n[s], n[s])
        assert per["_unknown_"] == want  # the pools are big enough
        assert per["_silence_"] == want  # slices of the 20 s noise recording
    assert res.skipped == [] and res.clips_found == len(
        [m for m in members if "/_" not in m and m.endswith(".wav")]
    )
    data_ = load_prepared(out)
    assert data_.manifest["archive"] == {"name": "mywords.tar.gz", "sha256": sha, "verified": True}
    assert list(data_.background_noise) == ["hum"]
    tr = data_.split("train")
    assert np.array_equal(tr.features, compute(tr.audio))
    row = tr.files.index(f"yes/{SPEAKERS['train'][0]}_nohash_0.wav")
    assert np.array_equal(
        tr.audio[row],
        _tone(
            440.0 + sorted(sum(SPEAKERS.values(), [])).index(SPEAKERS["train"][0]),
            sorted(sum(SPEAKERS.values(), [])).index(SPEAKERS["train"][0]),
        ),
    )

    # A second run is offline and does no work.
    requests = len(server.log)
    again = prepare(url, out, words="yes,no", download_dir=downloads, sha256=sha, progress=False)
    assert again.cached and len(server.log) == requests


def test_prepare_from_local_archive_with_top_folder(tmp_path):
    """A local .tar.gz whose members sit under one top folder; extracted once, then cached."""
    from kwstool.data import prepare

    members = {f"my_words/{k[2:]}": v for k, v in _archive_members().items()}
    archive = tmp_path / "my_words.tar.gz"
    archive.write_bytes(_tar_gz(members))
    downloads = tmp_path / "downloads"
    res = prepare(
        str(archive), tmp_path / "out", words=["no", "yes"], download_dir=downloads, progress=False
    )
    assert res.source == str(archive.resolve()) and res.labels[2:] == ["no", "yes"]
    assert (downloads / "my_words" / "my_words" / "yes").is_dir()
    n = sum(len(v) for v in SPEAKERS.values())
    assert sum(res.splits[s]["per_class"]["yes"] for s in res.splits) == n
    assert (
        "my_words.tar.gz is not a known official archive and no --sha256 was given: not "
        "verified" in res.warnings
    )
    assert prepare(
        str(archive), tmp_path / "out", words=["no", "yes"], download_dir=downloads, progress=False
    ).cached
