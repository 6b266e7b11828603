"""Tests for glus_cli.hub: model sources, the cache, downloads and error mapping, without network.

The Hub path is exercised for real. Hand-made caches in huggingface-hub's layout are served by the real
``snapshot_download`` in offline mode. A small in-process HTTP server plays the Hub for the online paths
(what gets downloaded, and how Hub errors surface). Only failures that cannot be produced locally (disk
full, a dropped connection mid-download) are simulated by making ``snapshot_download`` raise the real
exception classes.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import re
import socket
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Any

import httpx2
import pytest
from huggingface_hub import constants
from huggingface_hub.errors import (
    GatedRepoError,
    HfHubHTTPError,
    IncompleteSnapshotError,
    LocalEntryNotFoundError,
    OfflineModeIsEnabled,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.utils import are_progress_bars_disabled

from glus_cli import hub
from glus_cli.errors import CheckpointError, GlusError, NetworkError, OutputError
from glus_cli.manifest import load_manifest

CLIP = "openai/clip-vit-large-patch14"
SHARDS = ("pytorch_model-00001-of-00002.bin", "pytorch_model-00002-of-00002.bin")


def checkpoint_files(**config: str) -> dict[str, bytes]:
    """A GLUS-layout checkpoint with tiny, distinct file contents (distinct contents: distinct blobs)."""
    config = config or {"vision_tower": CLIP, "mm_vision_tower": CLIP}
    index = {"metadata": {}, "weight_map": {"model.norm.weight": SHARDS[0], "lm_head.weight": SHARDS[1]}}
    return {
        "config.json": json.dumps({"architectures": ["GLUSForCausalLM"], **config}).encode(),
        "tokenizer.model": b"sentencepiece" * 3,
        "tokenizer_config.json": b'{"tokenizer_class": "LlamaTokenizer"}',
        "pytorch_model.bin.index.json": json.dumps(index).encode(),
        SHARDS[0]: b"\x01" * 300,
        SHARDS[1]: b"\x02" * 200,
    }


def tower_files(weights: str = "model.safetensors") -> dict[str, bytes]:
    """A CLIP-tower folder with one weight file."""
    return {
        "config.json": b'{"model_type": "clip"}',
        "preprocessor_config.json": b'{"crop_size": 224}',
        weights: b"\x03" * 120,
    }


def commit_of(repo_id: str, ref: str = "main") -> str:
    return hashlib.sha1(f"{repo_id}@{ref}".encode()).hexdigest()


def make_cached(
    cache: Path, repo_id: str, files: dict[str, bytes], *, refs: tuple[str, ...] = ("main",)
) -> Path:
    """Write a snapshot in huggingface-hub's cache layout (refs, snapshots as symlinks, blobs); return it."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    commit = commit_of(repo_id, refs[0] if refs else "detached")
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (repo / "blobs").mkdir(exist_ok=True)
    for name, data in files.items():
        blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
        blob.write_bytes(data)
        (snapshot / name).symlink_to(Path("../../blobs") / blob.name)
    for ref in refs:
        (repo / "refs").mkdir(exist_ok=True)
        (repo / "refs" / ref).write_text(commit)
    return snapshot


class FakeHub:
    """An in-process HTTP server answering the few Hub endpoints that ``snapshot_download`` calls."""

    def __init__(self) -> None:
        self.repos: dict[str, tuple[str, dict[str, bytes]]] = {}
        self.errors: dict[str, tuple[int, dict[str, str]]] = {}  # repo_id -> status and headers
        self.requests: list[str] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                """Keep the test output quiet."""

            def do_HEAD(self) -> None:
                fake.serve(self, with_body=False)

            def do_GET(self) -> None:
                fake.serve(self, with_body=True)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        ).start()

    def add(self, repo_id: str, files: dict[str, bytes]) -> str:
        self.repos[repo_id] = (commit_of(repo_id, "hub"), files)
        return self.repos[repo_id][0]

    def downloads(self, repo_id: str) -> set[str]:
        """Names of the files whose content was requested from ``repo_id``."""
        prefix = f"GET /{repo_id}/resolve/"
        return {request.rsplit("/", 1)[1] for request in self.requests if request.startswith(prefix)}

    def serve(self, handler: BaseHTTPRequestHandler, *, with_body: bool) -> None:
        path = handler.path.split("?")[0]
        self.requests.append(f"{handler.command} {path}")
        status, headers, body = self.answer(path)
        handler.send_response(status)
        for key, value in {**headers, "Content-Length": str(len(body))}.items():
            handler.send_header(key, value)
        handler.end_headers()
        if with_body:
            handler.wfile.write(body)

    def answer(self, path: str) -> tuple[int, dict[str, str], bytes]:
        match = re.fullmatch(r"/api/models/([^/]+/[^/]+)/(revision|tree)/([^/]+)", path) or re.fullmatch(
            r"/([^/]+/[^/]+)/(resolve)/([^/]+)/(.+)", path
        )
        if match is None:
            return 404, {}, b""
        repo_id, endpoint, revision = match.group(1, 2, 3)
        if repo_id in self.errors:
            status, headers = self.errors[repo_id]
            return status, headers, b""
        if repo_id not in self.repos:
            return 404, {"X-Error-Code": "RepoNotFound"}, b""
        commit, files = self.repos[repo_id]
        if revision not in ("main", commit):
            return 404, {"X-Error-Code": "RevisionNotFound"}, b""
        as_json = {"Content-Type": "application/json"}
        if endpoint == "revision":
            return 200, as_json, json.dumps({"id": repo_id, "sha": commit}).encode()
        if endpoint == "tree":
            tree = [
                {"type": "file", "path": name, "size": len(data), "oid": hashlib.sha1(data).hexdigest()}
                for name, data in files.items()
            ]
            return 200, as_json, json.dumps(tree).encode()
        data = files[match.group(4)]
        return 200, {"X-Repo-Commit": commit, "ETag": f'"{hashlib.sha1(data).hexdigest()}"'}, data


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch) -> None:
    """No user cache settings leak in, and huggingface-hub is offline unless a test starts the fake Hub."""
    for name in ("GLUS_WEIGHTS_DIR", "HF_HOME", "HF_HUB_CACHE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("GLUS_WEIGHTS_DIR", str(folder))
    return folder


@pytest.fixture
def fake_hub(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeHub]:
    """Online mode, with the Hub endpoint pointing at a local FakeHub."""
    fake = FakeHub()
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", fake.url)
    monkeypatch.setattr(
        constants, "HUGGINGFACE_CO_URL_TEMPLATE", fake.url + "/{repo_id}/resolve/{revision}/{filename}"
    )
    yield fake
    fake.server.shutdown()
    fake.server.server_close()


@pytest.fixture
def snapshot_calls(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, object]]:
    """Record the calls to the real snapshot_download."""
    calls: list[dict[str, object]] = []
    real = hub.snapshot_download

    def spy(repo_id: str, **kwargs: object) -> str:
        calls.append({"repo_id": repo_id, **kwargs})
        return real(repo_id, **kwargs)

    monkeypatch.setattr(hub, "snapshot_download", spy)
    return calls


def assert_one_line(error: pytest.ExceptionInfo[GlusError]) -> str:
    message = str(error.value)
    assert message
    assert "\n" not in message
    return message


# --- manifest ---


def test_manifest_lists_the_released_checkpoints_with_glus_a_as_default() -> None:
    manifest = load_manifest()

    assert [entry.repo_id for entry in manifest.models] == [
        "Swindl/GLUS-A",
        "Swindl/GLUS-S",
        "Swindl/GLUS-S-partial",
    ]
    assert manifest.default.repo_id == "Swindl/GLUS-A"
    assert [(e.jf_mevis, e.jf_refytvos) for e in manifest.models] == [
        (51.3, 67.3),
        (50.3, 66.6),
        (49.5, 65.2),
    ]
    for entry in manifest.models:
        assert entry.vision_tower == CLIP
        assert entry.revision == "main"
        assert 13e9 < entry.size_bytes < 16e9
    tower = manifest.vision_tower(CLIP)
    assert tower is not None
    assert tower.files == ("config.json", "preprocessor_config.json", "model.safetensors")
    assert 1.6e9 < tower.size_bytes < 1.8e9
    assert manifest.model("Org/Unknown") is None


def test_packaged_manifest_is_the_weights_manifest() -> None:
    packaged = resources.files("glus_cli").joinpath("data", "manifest.json")
    source = Path(hub.__file__).resolve().parents[1] / "weights" / "manifest.json"

    assert packaged.read_bytes() == source.read_bytes()


@pytest.mark.parametrize(
    ("edit", "reason"),
    [
        (lambda data: "not json {", "Expecting value"),
        (lambda data: [data], "AttributeError"),
        (lambda data: {**data, "format_version": 2}, "format_version"),
        (lambda data: {**data, "models": [{**m, "default": True} for m in data["models"]]}, "exactly one"),
        (lambda data: {**data, "vision_towers": []}, "is not listed"),
        (lambda data: {**data, "models": [{"repo_id": "a/b"}]}, "KeyError"),
    ],
)
def test_invalid_manifest_is_a_checkpoint_error(
    tmp_path: Path, edit: Callable[[dict[str, Any]], object], reason: str
) -> None:
    data = json.loads(resources.files("glus_cli").joinpath("data", "manifest.json").read_text())
    edited = edit(data)
    path = tmp_path / "manifest.json"
    path.write_text(edited if isinstance(edited, str) else json.dumps(edited))

    with pytest.raises(CheckpointError, match=reason) as error:
        load_manifest(path)
    assert_one_line(error)


# --- weights_dir ---


def test_weights_dir_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    checkout_weights = Path(hub.__file__).resolve().parents[1] / "weights"
    assert hub.weights_dir() == checkout_weights  # running from the source checkout

    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    assert hub.weights_dir() == tmp_path / "hf" / "hub"

    monkeypatch.setenv("GLUS_WEIGHTS_DIR", str(tmp_path / "mine"))
    assert hub.weights_dir() == tmp_path / "mine"

    monkeypatch.delenv("GLUS_WEIGHTS_DIR")
    monkeypatch.delenv("HF_HOME")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    assert hub.weights_dir() == tmp_path / "hf" / "hub"

    monkeypatch.delenv("HF_HUB_CACHE")
    monkeypatch.setattr(hub, "_CHECKOUT_WEIGHTS_DIR", tmp_path / "no-checkout")  # an installed package
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert hub.weights_dir() == tmp_path / "home" / ".cache" / "glus-cli" / "weights"


# --- resolve_model ---


def test_resolve_model_serves_a_cached_snapshot_offline(
    cache: Path, snapshot_calls: list[dict[str, object]]
) -> None:
    snapshot = make_cached(cache, "Org/Name", checkpoint_files())

    assert hub.resolve_model("Org/Name") == snapshot
    assert len(snapshot_calls) == 1  # complete: no second call for the weights
    assert snapshot_calls[0]["cache_dir"] == cache
    assert "tokenizer.model" in snapshot_calls[0]["allow_patterns"]  # type: ignore[operator]


def test_resolve_model_revisions(cache: Path) -> None:
    main = make_cached(cache, "Org/Name", checkpoint_files())
    tagged = make_cached(cache, "Org/Name", checkpoint_files(), refs=("v2",))

    assert hub.resolve_model("Org/Name") == main
    assert hub.resolve_model("Org/Name", revision="v2") == tagged
    assert hub.resolve_model("Org/Name", revision=main.name) == main  # a full commit hash
    with pytest.raises(NetworkError, match=r"Org/Name@v3 is not in the local cache") as error:
        hub.resolve_model("Org/Name", revision="v3")
    assert "`glus download Org/Name --revision v3`" in assert_one_line(error)


def test_resolve_model_uses_a_local_folder_as_is(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    folder = tmp_path / "my-checkpoint"
    folder.mkdir()

    assert hub.resolve_model(str(folder)) == folder
    with caplog.at_level(logging.WARNING, logger="glus_cli.hub"):
        assert hub.resolve_model(str(folder), revision="v2") == folder
    assert "revision v2 ignored" in caplog.text


@pytest.mark.parametrize(
    "source", ["./missing", "/no/such/folder", "~nosuchuser0/x", "a/b/c", "checkpoint", "a/b..c"]
)
def test_resolve_model_rejects_what_is_neither_folder_nor_hub_id(cache: Path, source: str) -> None:
    with pytest.raises(CheckpointError, match="no such folder and not a Hub id") as error:
        hub.resolve_model(source)
    assert assert_one_line(error).endswith(f": {source}")


def test_resolve_model_rejects_an_empty_source() -> None:
    with pytest.raises(CheckpointError, match="no folder or Hub id given"):
        hub.resolve_model(" ")


def test_resolve_model_rejects_a_file(tmp_path: Path) -> None:
    file = tmp_path / "model.bin"
    file.write_bytes(b"")

    with pytest.raises(CheckpointError, match="is a file"):
        hub.resolve_model(str(file))


def test_offline_and_not_cached_is_a_network_error(cache: Path) -> None:
    with pytest.raises(NetworkError) as error:
        hub.resolve_model("Org/Missing")

    assert assert_one_line(error) == (
        f"checkpoint Org/Missing is not in the local cache ({cache}) and offline mode is on "
        "(HF_HUB_OFFLINE=1); run `glus download Org/Missing` on a machine with network, "
        "or pass `--model PATH` (a local checkpoint folder)"
    )


def test_offline_and_partly_cached_is_a_network_error(cache: Path) -> None:
    files = checkpoint_files()
    del files[SHARDS[1]]  # an interrupted download
    make_cached(cache, "Org/Name", files)

    with pytest.raises(NetworkError, match=r"only partly in the local cache .*\(HF_HUB_OFFLINE=1\)") as error:
        hub.resolve_model("Org/Name")
    assert_one_line(error)


def test_the_checks_before_loading_need_no_weights(cache: Path) -> None:
    """What the Ray driver resolves: the configs and the tokenizer, without a weight file."""
    files = {name: data for name, data in checkpoint_files().items() if name not in SHARDS}
    snapshot = make_cached(cache, "Org/Name", files)
    tower = {name: data for name, data in tower_files().items() if name != "model.safetensors"}
    tower_snapshot = make_cached(cache, CLIP, tower)

    assert hub.resolve_model("Org/Name", weights=False) == snapshot
    assert hub.resolve_vision_tower(CLIP, weights=False) == tower_snapshot
    with pytest.raises(NetworkError, match="only partly in the local cache"):
        hub.resolve_model("Org/Name")


# --- resolve_vision_tower ---


def test_vision_tower_falls_back_to_pytorch_model_bin(cache: Path) -> None:
    snapshot = make_cached(cache, CLIP, tower_files("pytorch_model.bin"))

    assert hub.resolve_vision_tower(CLIP) == snapshot


def test_vision_tower_without_weights_offline_is_a_network_error(cache: Path) -> None:
    files = tower_files()
    del files["model.safetensors"]
    make_cached(cache, CLIP, files)

    with pytest.raises(NetworkError, match=f"vision tower {CLIP} is only partly in the local cache") as error:
        hub.resolve_vision_tower(CLIP)
    line = assert_one_line(error)
    assert "`glus download <checkpoint>`" in line and "`--vision-tower PATH`" in line


# --- download ---


def test_download_fetches_the_checkpoint_and_its_vision_tower_from_the_cache(cache: Path) -> None:
    checkpoint = make_cached(cache, "Org/Name", checkpoint_files())
    tower = make_cached(cache, CLIP, tower_files())

    result = hub.download("Org/Name", progress=False)

    assert result == hub.DownloadResult(
        model="Org/Name",
        model_path=checkpoint,
        vision_tower=CLIP,
        vision_tower_path=tower,
        size_bytes=sum(map(len, checkpoint_files().values())) + sum(map(len, tower_files().values())),
    )
    assert not are_progress_bars_disabled()  # progress=False is scoped to the call


def test_download_reads_mm_vision_tower_and_accepts_a_local_checkpoint(cache: Path, tmp_path: Path) -> None:
    tower = make_cached(cache, "Org/Tower", tower_files())
    local = tmp_path / "local"
    local.mkdir()
    (local / "config.json").write_text(json.dumps({"mm_vision_tower": "Org/Tower"}))

    result = hub.download(str(local))

    assert (result.model_path, result.vision_tower, result.vision_tower_path) == (local, "Org/Tower", tower)


def test_download_needs_a_vision_tower_in_config(cache: Path) -> None:
    make_cached(cache, "Org/Name", checkpoint_files(model_type="llava"))

    with pytest.raises(CheckpointError, match="names no vision tower") as error:
        hub.download("Org/Name")
    assert_one_line(error)


def test_download_of_a_folder_without_config_is_a_checkpoint_error(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"has no config\.json"):
        hub.download(str(tmp_path))


# --- online, against the fake Hub ---


def test_online_download_fetches_only_what_inference_reads(
    cache: Path, fake_hub: FakeHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    checkpoint = {**checkpoint_files(), "training_args.bin": b"args", "README.md": b"# card"}
    tower = {
        **tower_files(),
        "pytorch_model.bin": b"\x04" * 90,
        "tokenizer.json": b"{}",
        "tf_model.h5": b"tf",
    }
    fake_hub.add("Org/Name", checkpoint)
    fake_hub.add(CLIP, tower)

    result = hub.download("Org/Name")

    assert fake_hub.downloads("Org/Name") == {
        "config.json",
        "tokenizer.model",
        "tokenizer_config.json",
        "pytorch_model.bin.index.json",
        *SHARDS,
    }
    assert fake_hub.downloads(CLIP) == {"config.json", "preprocessor_config.json", "model.safetensors"}
    assert (result.model_path / SHARDS[1]).read_bytes() == checkpoint[SHARDS[1]]

    # Once downloaded, everything resolves offline without a request.
    requests = len(fake_hub.requests)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    assert hub.download("Org/Name") == result
    assert len(fake_hub.requests) == requests


def test_online_prefers_a_safetensors_index(cache: Path, fake_hub: FakeHub) -> None:
    safetensors_index = {"weight_map": {"a": "model-00001-of-00001.safetensors"}}
    files = {
        **checkpoint_files(),
        "model.safetensors.index.json": json.dumps(safetensors_index).encode(),
        "model-00001-of-00001.safetensors": b"\x05" * 64,
    }
    fake_hub.add("Org/Name", files)

    folder = hub.resolve_model("Org/Name")

    assert not set(SHARDS) & fake_hub.downloads("Org/Name")
    assert (folder / "model-00001-of-00001.safetensors").is_file()


def test_online_repo_without_weights_is_a_checkpoint_error(cache: Path, fake_hub: FakeHub) -> None:
    fake_hub.add("Org/Name", {"config.json": b"{}", "tokenizer.model": b"sp"})

    with pytest.raises(CheckpointError, match="has no weights on the Hub") as error:
        hub.resolve_model("Org/Name")
    assert_one_line(error)


def test_online_index_naming_a_missing_shard_is_a_checkpoint_error(cache: Path, fake_hub: FakeHub) -> None:
    files = checkpoint_files()
    del files[SHARDS[1]]
    fake_hub.add("Org/Name", files)

    with pytest.raises(CheckpointError, match=f"incomplete on the Hub: it lacks {SHARDS[1]}"):
        hub.resolve_model("Org/Name")


@pytest.mark.parametrize(
    ("status", "headers", "revision", "message"),
    [
        (
            404,
            {"X-Error-Code": "RepoNotFound"},
            None,
            "neither a local folder nor a repository on the Hugging",
        ),
        # Over https the Hub's 401 on /api/models becomes RepositoryNotFoundError; over http it stays a 401.
        (401, {}, None, r"refused access to checkpoint Org/Name \(401\)"),
        (503, {}, None, "the Hugging Face Hub answered 503"),
        (403, {"X-Error-Code": "GatedRepo"}, None, "is gated on the Hub"),
        (403, {"X-Error-Message": "Access to this resource is disabled."}, None, "has been disabled"),
        (None, {}, "v9", "revision v9 of checkpoint Org/Name does not exist on the Hub"),
    ],
)
def test_hub_answers_map_to_glus_errors(
    cache: Path,
    fake_hub: FakeHub,
    status: int | None,
    headers: dict[str, str],
    revision: str | None,
    message: str,
) -> None:
    fake_hub.add("Org/Name", checkpoint_files())
    if status is not None:
        fake_hub.errors["Org/Name"] = (status, headers)

    with pytest.raises(GlusError, match=message) as error:
        hub.resolve_model("Org/Name", revision=revision)
    assert isinstance(error.value, NetworkError if status == 503 else CheckpointError)
    assert_one_line(error)


def test_unreachable_hub_is_a_network_error(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as probe:  # a port that nothing listens on
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}"
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", closed)

    with pytest.raises(NetworkError, match=r"could not reach the Hugging Face Hub \(ConnectError") as error:
        hub.resolve_model("Org/Name")
    assert "not in the local cache" in assert_one_line(error)


# --- failures that cannot be produced locally ---


def _response(status: int) -> httpx2.Response:
    return httpx2.Response(
        status, request=httpx2.Request("GET", "https://huggingface.co/api/models/Org/Name")
    )


def _connection_lost() -> LocalEntryNotFoundError:
    error = LocalEntryNotFoundError("An error happened while trying to locate the files on the Hub.")
    error.__cause__ = httpx2.ConnectError("[Errno -3] Temporary failure in name resolution")
    return error


@pytest.mark.parametrize(
    ("raised", "offline", "expected", "message"),
    [
        (
            _connection_lost(),
            False,
            NetworkError,
            r"could not reach the Hugging Face Hub \(ConnectError: \[Errno -3",
        ),
        (
            LocalEntryNotFoundError("Cannot find"),
            True,
            NetworkError,
            r"not in the local cache .*HF_HUB_OFFLINE=1",
        ),
        (OfflineModeIsEnabled("offline"), True, NetworkError, r"not in the local cache .*HF_HUB_OFFLINE=1"),
        (IncompleteSnapshotError("3 files missing", snapshot_path="/x"), True, NetworkError, "only partly"),
        (
            httpx2.ConnectError("connection reset"),
            False,
            NetworkError,
            "could not download .*connection reset",
        ),
        (httpx2.ReadTimeout("timed out"), False, NetworkError, "ReadTimeout: timed out"),
        (httpx2.ProxyError("bad proxy"), False, NetworkError, "proxy settings"),
        (HfHubHTTPError("503 Server Error", response=_response(503)), False, NetworkError, "answered 503"),
        (
            HfHubHTTPError("401 Client Error", response=_response(401)),
            False,
            CheckpointError,
            r"refused access.*401",
        ),
        (RepositoryNotFoundError("404", response=_response(404)), False, CheckpointError, "nor a repository"),
        (GatedRepoError("403", response=_response(403)), False, CheckpointError, "gated"),
        (RevisionNotFoundError("404", response=_response(404)), False, CheckpointError, "does not exist"),
        (OSError(errno.ENOSPC, "No space left on device"), False, OutputError, "disk full while downloading"),
        (
            PermissionError(errno.EACCES, "Permission denied"),
            False,
            OutputError,
            "cannot write the download cache",
        ),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, BaseException) else None,
)
def test_error_mapping(
    cache: Path,
    monkeypatch: pytest.MonkeyPatch,
    raised: BaseException,
    offline: bool,
    expected: type[GlusError],
    message: str,
) -> None:
    def failing_snapshot_download(repo_id: str, **kwargs: object) -> str:
        raise raised

    monkeypatch.setattr(hub, "snapshot_download", failing_snapshot_download)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", offline)

    with pytest.raises(expected, match=message) as error:
        hub.resolve_model("Org/Name")
    assert_one_line(error)
    assert error.value.__cause__ is raised


def test_unexpected_os_errors_are_not_hidden(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def failing_snapshot_download(repo_id: str, **kwargs: object) -> str:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(hub, "snapshot_download", failing_snapshot_download)

    with pytest.raises(OSError, match="Input/output error"):
        hub.resolve_model("Org/Name")


# --- list_models ---


def test_list_models_reports_the_cache(cache: Path) -> None:
    glus_a = make_cached(cache, "Swindl/GLUS-A", checkpoint_files())
    partial = checkpoint_files()
    del partial[SHARDS[0]]
    glus_s = make_cached(cache, "Swindl/GLUS-S", partial)
    clip = make_cached(cache, CLIP, tower_files())
    finetune = make_cached(cache, "Me/GLUS-finetune", checkpoint_files(), refs=())
    make_cached(cache, "Org/unrelated-bert", {"config.json": b'{"model_type": "bert"}'})

    statuses = {status.repo_id: status for status in hub.list_models()}

    assert list(statuses) == [
        "Swindl/GLUS-A",
        "Swindl/GLUS-S",
        "Swindl/GLUS-S-partial",
        CLIP,
        "Me/GLUS-finetune",
    ]
    a, s, s_partial, tower, other = statuses.values()
    assert (a.cached, a.complete, a.path, a.kind) == (True, True, glus_a, "checkpoint")
    assert a.size_bytes == sum(map(len, checkpoint_files().values()))
    assert a.entry is not None and a.entry.default  # type: ignore[union-attr]
    assert (s.cached, s.complete, s.path) == (True, False, glus_s)
    assert s.size_bytes == sum(map(len, partial.values()))
    assert (s_partial.cached, s_partial.complete, s_partial.size_bytes, s_partial.path) == (
        False,
        False,
        0,
        None,
    )
    assert (tower.kind, tower.complete, tower.path) == ("vision tower", True, clip)
    assert (other.entry, other.cached, other.complete, other.path) == (None, True, True, finetune)


def test_list_models_with_no_cache_yet(cache: Path) -> None:
    statuses = hub.list_models()

    assert len(statuses) == 4
    assert not any(status.cached for status in statuses)
