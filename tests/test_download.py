"""Download helper without network: a fake server (or a file:// URL) exercises resume, verification, unpacking."""

from __future__ import annotations

import hashlib
import io
import json
import re
import tarfile
import urllib.error
import zipfile

import pytest

from dsrg.cli import main
from dsrg.data import download as dl
from dsrg.data.download import Archive, DownloadError, download
from dsrg.errors import InputError

URL = "http://example.invalid/VOCtrainval.tar"


def tar_bytes(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def zip_bytes(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buf.getvalue()


PAYLOAD = tar_bytes({"VOCdevkit/VOC2012/ImageSets/Segmentation/train.txt": b"2007_000032\n" * 4000,
                     "VOCdevkit/VOC2012/JPEGImages/readme.txt": b"x" * 5000})
SHA = hashlib.sha256(PAYLOAD).hexdigest()


class Response:
    def __init__(self, body: bytes, status: int, headers: dict[str, str], break_after: int | None = None):
        self._body, self.status, self.headers, self._break = io.BytesIO(body), status, headers, break_after
        self._sent = 0

    def read(self, n: int = -1) -> bytes:
        if self._break is not None and self._sent >= self._break:
            raise ConnectionResetError("connection reset by peer")
        n = n if self._break is None else min(n, self._break - self._sent)
        chunk = self._body.read(n)
        self._sent += len(chunk)
        return chunk

    def getcode(self) -> int:
        return self.status

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


class FakeServer:
    """Serves ``body`` for any URL; honours ``Range: bytes=N-`` unless ``ignore_range``; records the requests."""

    def __init__(self, body: bytes, ignore_range: bool = False, break_after: int | None = None):
        self.body, self.ignore_range, self.break_after = body, ignore_range, break_after
        self.requests: list[dict[str, str]] = []

    def __call__(self, request):
        headers = dict(request.header_items())
        self.requests.append(headers)
        start = int(re.fullmatch(r"bytes=(\d+)-", headers["Range"]).group(1)) if "Range" in headers else 0
        if start and not self.ignore_range:
            if start >= len(self.body):
                raise urllib.error.HTTPError(request.full_url, 416, "Range Not Satisfiable", {}, None)
            rest = self.body[start:]
            return Response(rest, 206, {"Content-Length": str(len(rest)),
                                        "Content-Range": f"bytes {start}-{len(self.body) - 1}/{len(self.body)}"})
        brk, self.break_after = self.break_after, None  # break the first full response only
        return Response(self.body, 200, {"Content-Length": str(len(self.body))}, break_after=brk)


def offline(request):
    """An opener without network."""
    raise urllib.error.URLError("no route to host")


@pytest.fixture
def source(monkeypatch):
    """Replace the official sources by one test archive; returns a setter for its fields."""
    def set_archive(**fields) -> Archive:
        archive = Archive(**{"url": URL, "name": "VOCtrainval.tar", "sha256": SHA, "size": len(PAYLOAD), **fields})
        monkeypatch.setitem(dl.SOURCES, "voc", (archive,))
        return archive
    set_archive()
    return set_archive


def test_download_verifies_unpacks_marks_done_and_is_idempotent(source, tmp_path):
    server = FakeServer(PAYLOAD)
    root = download("voc", tmp_path, opener=server, progress=False)
    assert root == tmp_path / "VOCdevkit" / "VOC2012"
    assert (root / "ImageSets/Segmentation/train.txt").read_bytes() == b"2007_000032\n" * 4000
    assert (tmp_path / ".VOCtrainval.tar.done").is_file() and not (tmp_path / "VOCtrainval.tar").exists()
    manifest = json.loads((tmp_path / "dsrg-downloads.json").read_text())["VOCtrainval.tar"]
    assert manifest["sha256"] == SHA and manifest["verified"] and manifest["bytes"] == len(PAYLOAD)
    assert download("voc", tmp_path, opener=server, progress=False) == root
    assert len(server.requests) == 1  # the second call asked nothing


def test_an_interrupted_download_resumes_with_a_range_request(source, tmp_path):
    server = FakeServer(PAYLOAD, break_after=7000)
    with pytest.raises(DownloadError, match=r"broke off after 7000 bytes.*run the same command again to resume"):
        download("voc", tmp_path, opener=server, progress=False)
    part = tmp_path / "VOCtrainval.tar.part"
    assert part.stat().st_size == 7000
    download("voc", tmp_path, opener=server, progress=False, keep_archives=True)
    assert server.requests[-1]["Range"] == "bytes=7000-"
    assert (tmp_path / "VOCtrainval.tar").read_bytes() == PAYLOAD and not part.exists()


def test_a_short_response_keeps_the_part_for_the_next_call(source, tmp_path):
    class Short(FakeServer):
        def __call__(self, request):
            response = super().__call__(request)
            response._body = io.BytesIO(self.body[:100])  # says Content-Length: full, sends 100 bytes
            return response

    with pytest.raises(DownloadError, match=r"stopped at 100 of \d+ bytes.*resume"):
        download("voc", tmp_path, opener=Short(PAYLOAD), progress=False)
    assert (tmp_path / "VOCtrainval.tar.part").stat().st_size == 100


def test_a_server_that_ignores_range_sends_the_whole_file_again(source, tmp_path):
    (tmp_path / "VOCtrainval.tar.part").write_bytes(b"junk" * 100)
    server = FakeServer(PAYLOAD, ignore_range=True)
    download("voc", tmp_path, opener=server, progress=False, keep_archives=True)
    assert server.requests[0]["Range"] == "bytes=400-"
    assert (tmp_path / "VOCtrainval.tar").read_bytes() == PAYLOAD


def test_a_complete_part_answered_with_416_is_verified_and_used(source, tmp_path):
    source(size=None)
    (tmp_path / "VOCtrainval.tar.part").write_bytes(PAYLOAD)
    root = download("voc", tmp_path, opener=FakeServer(PAYLOAD), progress=False)
    assert (root / "JPEGImages/readme.txt").is_file()


def test_a_checksum_mismatch_deletes_the_download_and_unpacks_nothing(source, tmp_path):
    source(sha256="0" * 64)
    with pytest.raises(DownloadError, match=r"SHA-256 [0-9a-f]{64} does not match the known 0{64}"):
        download("voc", tmp_path, opener=FakeServer(PAYLOAD), progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_an_archive_copied_by_hand_is_checked_and_unpacked_without_network(source, tmp_path):
    (tmp_path / "VOCtrainval.tar").write_bytes(PAYLOAD)
    root = download("voc", tmp_path, opener=offline, progress=False)
    assert (root / "JPEGImages/readme.txt").is_file() and (tmp_path / ".VOCtrainval.tar.done").is_file()


def test_an_archive_copied_by_hand_that_does_not_match_is_renamed_to_bad_not_deleted(source, tmp_path):
    source(sha256="0" * 64)
    placed, bad = tmp_path / "VOCtrainval.tar", tmp_path / "VOCtrainval.tar.bad"
    bad.write_bytes(b"an older bad copy")
    placed.write_bytes(PAYLOAD)
    server = FakeServer(PAYLOAD)
    with pytest.raises(DownloadError, match=rf"^{re.escape(str(placed))} has SHA-256 {SHA}, expected 0{{64}}: "
                                            rf"not the file from {re.escape(URL)} .*renamed it to "
                                            rf"{re.escape(str(bad))} .*Check or delete"):
        download("voc", tmp_path, opener=server, progress=False)
    assert bad.read_bytes() == PAYLOAD and not placed.exists() and not (tmp_path / "VOCdevkit").exists()
    assert server.requests == []  # nothing downloaded over it


def test_an_archive_copied_by_hand_of_the_wrong_size_is_renamed_to_bad(source, tmp_path):
    (tmp_path / "VOCtrainval.tar").write_bytes(PAYLOAD[:1000])
    with pytest.raises(DownloadError, match=rf"VOCtrainval.tar is 1000 bytes, expected {len(PAYLOAD)}: .*renamed"):
        download("voc", tmp_path, opener=offline, progress=False)
    assert (tmp_path / "VOCtrainval.tar.bad").stat().st_size == 1000 and not (tmp_path / "VOCtrainval.tar").exists()


def test_a_wrong_size_deletes_the_download(source, tmp_path):
    source(size=len(PAYLOAD) + 1)
    with pytest.raises(DownloadError, match=rf"downloaded {len(PAYLOAD)} bytes, expected {len(PAYLOAD) + 1}"):
        download("voc", tmp_path, opener=FakeServer(PAYLOAD), progress=False)
    assert not (tmp_path / "VOCtrainval.tar.part").exists() and not (tmp_path / "VOCdevkit").exists()


def test_an_unknown_checksum_is_measured_and_recorded(source, tmp_path):
    source(sha256=None, size=None)
    download("voc", tmp_path, opener=FakeServer(PAYLOAD), progress=False)
    entry = json.loads((tmp_path / "dsrg-downloads.json").read_text())["VOCtrainval.tar"]
    assert entry["sha256"] == SHA and entry["sha256_known"] is None and not entry["verified"]


def test_a_file_url_zip_works_with_the_default_opener(source, tmp_path):
    data = zip_bytes({"annotations/instances_val2014.json": b"{}", "val2014/a.jpg": b"jpeg"})
    (tmp_path / "served").mkdir()
    archive = tmp_path / "served" / "annotations.zip"
    archive.write_bytes(data)
    source(url=archive.as_uri(), name="annotations.zip", sha256=hashlib.sha256(data).hexdigest(), size=len(data))
    download("voc", tmp_path / "coco", progress=False)
    assert (tmp_path / "coco" / "annotations" / "instances_val2014.json").read_bytes() == b"{}"
    assert (tmp_path / "coco" / "val2014" / "a.jpg").read_bytes() == b"jpeg"


def test_an_archive_member_outside_the_root_is_refused(source, tmp_path):
    data = zip_bytes({"../evil.txt": b"x"})
    source(sha256=hashlib.sha256(data).hexdigest(), size=len(data), name="evil.zip")
    with pytest.raises(DownloadError, match="outside"):
        download("voc", tmp_path / "root", opener=FakeServer(data), progress=False)
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path / "root" / ".evil.zip.done").exists()


def test_a_network_error_is_a_clear_error_with_the_offline_route(source, tmp_path):
    with pytest.raises(DownloadError, match=rf"^cannot download {re.escape(URL)}: .*no route to host.*\. Without "
                                            rf"network: fetch VOCtrainval.tar \({re.escape(URL)}\) elsewhere and "
                                            rf"copy it into {re.escape(str(tmp_path))} .*running the same command "
                                            "again then checks it .* and unpacks it$"):
        download("voc", tmp_path, opener=offline, progress=False)


def test_without_network_a_root_already_unpacked_by_hand_is_said_to_need_no_download(source, tmp_path):
    (tmp_path / "VOCdevkit" / "VOC2012" / "JPEGImages").mkdir(parents=True)
    with pytest.raises(DownloadError) as err:
        download("voc", tmp_path, opener=offline, progress=False)
    assert str(err.value).endswith(f". {tmp_path / 'VOCdevkit' / 'VOC2012'} holds JPEGImages/ already (unpacked by "
                                   f"hand?): it needs no download, `dsrg data check --root "
                                   f"{tmp_path / 'VOCdevkit' / 'VOC2012'}` reads it")


def test_a_failed_download_leaves_no_folder_it_made_unless_a_part_is_there_to_resume(source, tmp_path):
    root = tmp_path / "data" / "voc"
    with pytest.raises(DownloadError, match=rf"copy it into the folder {re.escape(str(root))} \(make it first\)"):
        download("voc", root, opener=offline, progress=False)
    assert list(tmp_path.iterdir()) == [], "no empty data/voc left behind"
    with pytest.raises(DownloadError, match="resume"):
        download("voc", root, opener=FakeServer(PAYLOAD, break_after=7000), progress=False)
    assert [p.name for p in root.iterdir()] == ["VOCtrainval.tar.part"]


def test_the_offline_route_names_every_archive_still_missing(monkeypatch, tmp_path):
    done, placed, missing, later = (Archive(f"http://example.invalid/{n}", n)
                                    for n in ("a.zip", "b.zip", "c.zip", "d.zip"))
    monkeypatch.setitem(dl.SOURCES, "voc", (done, missing, placed, later))
    dl.marker_path(tmp_path, done).write_text("{}")
    (tmp_path / "b.zip").write_bytes(b"placed by hand")  # present: checked when its turn comes

    def refuse(request):
        raise urllib.error.HTTPError(request.full_url, 404, "Not Found", {}, None)

    with pytest.raises(DownloadError, match=r"HTTP 404 Not Found\. Without network: fetch "
                                            r"c\.zip \(http://example\.invalid/c\.zip\), "
                                            r"d\.zip \(http://example\.invalid/d\.zip\) "
                                            r"elsewhere and copy them into .* checks them") as exc:
        download("voc", tmp_path, opener=refuse, progress=False)
    assert "a.zip" not in str(exc.value) and "b.zip" not in str(exc.value)


def test_unknown_kind_lists_the_known_ones(tmp_path):
    with pytest.raises(InputError, match="unknown dataset 'imagenet'.*voc, sbd, coco"):
        download("imagenet", tmp_path)


def test_official_sources_name_the_official_hosts_and_sha256():
    hosts = {"voc": "host.robots.ox.ac.uk", "sbd": "www2.eecs.berkeley.edu", "coco": "images.cocodataset.org"}
    for kind, host in hosts.items():
        for archive in dl.SOURCES[kind]:
            assert f"://{host}/" in archive.url and archive.url.endswith(archive.name)
            assert re.fullmatch(r"[0-9a-f]{64}", archive.sha256 or ""), f"{archive.name}: no SHA-256 to verify"
    assert {a.name for a in dl.SOURCES["coco"]} == {"train2014.zip", "val2014.zip", "annotations_trainval2014.zip"}


def test_cli_download_prints_the_dataset_folder(source, tmp_path, capsys):
    served = tmp_path / "VOCtrainval.tar"
    served.write_bytes(PAYLOAD)
    source(url=served.as_uri())
    assert main(["data", "download", "voc", "--root", str(tmp_path / "data"), "--quiet"]) == 0
    assert str(tmp_path / "data" / "VOCdevkit" / "VOC2012") in capsys.readouterr().out
