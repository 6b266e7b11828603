"""Model sources, downloads and the local checkpoint cache.

A *model source* is either a local folder, used as is, or a Hugging Face Hub id (``org/name``). Hub ids are
fetched with :func:`huggingface_hub.snapshot_download` into a cache folder in the Hub's own layout
(``models--org--name/{refs,snapshots,blobs}``), so a cache filled by ``glus download`` on one machine can be
copied to another and used offline, and users who already have a Hugging Face cache reuse it.

Where that cache lives is decided by :func:`weights_dir`.

A GLUS checkpoint does not contain its CLIP vision tower: ``config.json`` names it (``vision_tower``, the
official loader's source of truth, or ``mm_vision_tower``), and :func:`download` fetches both. The known
checkpoints, their sizes and reported accuracy are listed in ``weights/manifest.json``
(`glus_cli.manifest`).

Only the files inference needs are fetched, and only one weight format: a sharded index
(``model.safetensors.index.json`` before ``pytorch_model.bin.index.json``) and exactly the shards it names,
else ``model.safetensors`` before ``pytorch_model.bin``. With network, huggingface-hub asks the Hub whether
the revision moved; offline (``HF_HUB_OFFLINE=1``) a cached snapshot is used without any network call.
Every failure is raised as a one-line :class:`~glus_cli.errors.GlusError`.
"""

from __future__ import annotations

import errno
import logging
import os
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import httpx2
from huggingface_hub import (
    CachedRepoInfo,
    CachedRevisionInfo,
    constants,
    get_cached_repo_tree,
    scan_cache_dir,
    snapshot_download,
)
from huggingface_hub.errors import (
    CachedRepoTreeNotFoundError,
    CacheNotFound,
    DisabledRepoError,
    GatedRepoError,
    HfHubHTTPError,
    HFValidationError,
    IncompleteSnapshotError,
    LocalEntryNotFoundError,
    OfflineModeIsEnabled,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.utils import disable_progress_bars, validate_repo_id

from glus_cli.checkpoint_layout import (
    CONFIG_NAME,
    SINGLE_WEIGHT_FILES,
    WEIGHT_INDEX_FILES,
    index_shard_names,
    read_config_json,
    vision_tower_name,
)
from glus_cli.errors import CheckpointError, GlusError, NetworkError, OutputError, one_line
from glus_cli.manifest import ModelEntry, VisionTowerEntry, load_manifest

__all__ = [
    "DownloadResult",
    "ModelStatus",
    "checkpoint_vision_tower",
    "download",
    "list_models",
    "resolve_model",
    "resolve_vision_tower",
    "weights_dir",
]

logger = logging.getLogger(__name__)

Kind = Literal["checkpoint", "vision tower"]

# The source checkout's weights/ folder; it counts as the cache only when it holds the manifest.
_CHECKOUT_WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "weights"

# What inference reads from a GLUS checkpoint besides the weights: config and the LLaMA tokenizer.
_CHECKPOINT_FILES = (
    CONFIG_NAME,
    "generation_config.json",
    "tokenizer.model",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
)
# What CLIPVisionModel and CLIPImageProcessor read besides the weights.
_VISION_TOWER_FILES = (CONFIG_NAME, "preprocessor_config.json")
_DISK_FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT}
_NOT_WRITABLE_ERRNOS = {errno.EACCES, errno.EPERM, errno.EROFS}


# --- Cache location ---


def weights_dir() -> Path:
    """The local checkpoint cache, in huggingface-hub's cache layout. The first match wins:

    1. ``$GLUS_WEIGHTS_DIR``, when set;
    2. huggingface-hub's own cache (``$HF_HUB_CACHE``, else ``$HF_HOME/hub``), when ``HF_HOME`` or
       ``HF_HUB_CACHE`` is set, so that existing Hugging Face caches are reused;
    3. the ``weights/`` folder of the source checkout, when glus-cli runs from a clone (that folder holds
       ``manifest.json``);
    4. ``~/.cache/glus-cli/weights``.

    The folder may not exist yet; downloading creates it.
    """
    override = os.environ.get("GLUS_WEIGHTS_DIR")
    if override:
        return Path(override).expanduser()
    if os.environ.get("HF_HOME") or os.environ.get("HF_HUB_CACHE"):
        return Path(constants.HF_HUB_CACHE)
    if (_CHECKOUT_WEIGHTS_DIR / "manifest.json").is_file():
        return _CHECKOUT_WEIGHTS_DIR
    return Path.home() / ".cache" / "glus-cli" / "weights"


# --- Resolving sources ---


def resolve_model(
    source: str, revision: str | None = None, *, progress: bool = True, weights: bool = True
) -> Path:
    """Return the folder of a GLUS checkpoint: ``source`` itself if it is a folder, else a Hub snapshot.

    A Hub id (``org/name``) is fetched into :func:`weights_dir` (config, tokenizer, one weight format);
    ``revision`` is a branch, tag or commit (default: the manifest's revision, else ``main``). The folder's
    content is not validated here beyond the weights being complete. With ``weights=False`` only the
    config and tokenizer files are fetched (what the checks before loading read).

    Raises:
        CheckpointError: no such folder and not a Hub id; repository or revision not found; gated/private.
        NetworkError: not cached and offline, or the Hub cannot be reached.
        OutputError: the disk filled up or the cache is not writable while downloading.
    """
    return _resolve(source, revision, "checkpoint", _CHECKPOINT_FILES, progress, weights=weights)


def resolve_vision_tower(
    name_or_path: str, revision: str | None = None, *, progress: bool = True, weights: bool = True
) -> Path:
    """Return the folder of a CLIP vision tower: a local folder as is, else a Hub snapshot.

    Only what ``CLIPVisionModel`` and ``CLIPImageProcessor`` read is fetched: ``config.json``,
    ``preprocessor_config.json`` and one weight format (``model.safetensors``, else ``pytorch_model.bin``).
    Errors are those of :func:`resolve_model`.
    """
    return _resolve(name_or_path, revision, "vision tower", _VISION_TOWER_FILES, progress, weights=weights)


def checkpoint_vision_tower(checkpoint_dir: Path) -> str:
    """The CLIP vision tower (Hub id or folder) that a checkpoint folder's ``config.json`` names.

    Raises:
        CheckpointError: ``config.json`` is missing, unreadable, or names no vision tower.
    """
    return vision_tower_name(read_config_json(checkpoint_dir), checkpoint_dir / CONFIG_NAME)


@dataclass(frozen=True)
class DownloadResult:
    """What :func:`download` fetched (or found cached)."""

    model: str  # the source as given
    model_path: Path
    vision_tower: str  # as named by the checkpoint's config.json
    vision_tower_path: Path
    size_bytes: int  # bytes on disk of both folders


def download(model: str, revision: str | None = None, *, progress: bool = True) -> DownloadResult:
    """Fetch a checkpoint and the CLIP vision tower its ``config.json`` names, so that both work offline.

    ``model`` may also be a local folder; then only its vision tower is fetched. Errors are those of
    :func:`resolve_model`, plus CheckpointError when ``config.json`` names no vision tower.
    """
    model_path = _resolve(model, revision, "checkpoint", _CHECKPOINT_FILES, progress, downloading=True)
    tower = checkpoint_vision_tower(model_path)
    tower_path = _resolve(tower, None, "vision tower", _VISION_TOWER_FILES, progress, downloading=True)
    result = DownloadResult(
        model=model,
        model_path=model_path,
        vision_tower=tower,
        vision_tower_path=tower_path,
        size_bytes=_folder_size(model_path) + _folder_size(tower_path),
    )
    logger.info("%s is in %s (vision tower %s in %s)", model, model_path, tower, tower_path)
    return result


def _resolve(
    source: str,
    revision: str | None,
    kind: Kind,
    files: Sequence[str],
    progress: bool,
    *,
    weights: bool = True,
    downloading: bool = False,
) -> Path:
    if not source.strip():
        raise CheckpointError(f"{kind}: no folder or Hub id given")
    try:
        folder = Path(source).expanduser()
    except RuntimeError as error:  # ~user of an unknown user
        raise CheckpointError(f"{kind}: no such folder and not a Hub id: {source}") from error
    if folder.is_dir():
        if revision is not None:
            logger.warning("revision %s ignored: %s is a local folder", revision, source)
        return folder
    if folder.exists():
        raise CheckpointError(f"{kind} {source} is a file; expected a folder or a Hub id")
    if not _is_repo_id(source):
        raise CheckpointError(f"{kind}: no such folder and not a Hub id: {source}")
    request = _Request(source, revision or _manifest_revision(source), kind, weights_dir(), downloading)
    return _fetch(request, files, progress, with_weights=weights)


def _is_repo_id(source: str) -> bool:
    if source.count("/") != 1:
        return False
    try:
        validate_repo_id(source)
    except HFValidationError:
        return False
    return True


def _manifest_revision(repo_id: str) -> str | None:
    manifest = load_manifest()
    entry = manifest.model(repo_id) or manifest.vision_tower(repo_id)
    return entry.revision if entry is not None else None


# --- Fetching from the Hub ---


@dataclass(frozen=True)
class _Request:
    """One Hub fetch, for error messages."""

    repo_id: str
    revision: str | None
    kind: Kind
    cache: Path
    downloading: bool = False
    """Fetched by `glus download` (whose advice is not to download)."""

    @property
    def label(self) -> str:
        shown = self.revision not in (None, constants.DEFAULT_REVISION)
        return f"{self.repo_id}@{self.revision}" if shown else self.repo_id

    @property
    def hint(self) -> str:
        """What to do about a file that is not cached: download it, or give a local folder instead."""
        if self.downloading:
            return "unset HF_HUB_OFFLINE to download"
        if self.kind == "vision tower":
            return (
                "run `glus download <checkpoint>` on a machine with network, or pass "
                "`--vision-tower PATH` (a local CLIP folder)"
            )
        option = f" --revision {self.revision}" if self.label != self.repo_id else ""
        return (
            f"run `glus download {self.repo_id}{option}` on a machine with network, or pass "
            "`--model PATH` (a local checkpoint folder)"
        )

    @property
    def local_option(self) -> str:
        """The option naming a local folder instead of this fetch (none for `glus download`)."""
        if self.downloading:
            return ""
        option = "--vision-tower" if self.kind == "vision tower" else "--model"
        return f", or pass `{option} PATH`"


def _fetch(request: _Request, files: Sequence[str], progress: bool, *, with_weights: bool = True) -> Path:
    """Snapshot the request's repository with ``files`` and one complete weight format; return the folder.

    The first call fetches the small files and any weight index; the weights to fetch are then chosen from
    the index (or the repository's file listing) and fetched at the same commit (not with
    ``with_weights=False``).
    """
    repo_id, revision, kind = request.repo_id, request.revision, request.kind
    logger.info("resolving %s %s in %s", kind, request.label, request.cache)
    quiet: AbstractContextManager[object] = nullcontext() if progress else disable_progress_bars()
    with quiet, _hub_errors(request):
        folder = Path(
            snapshot_download(
                repo_id,
                revision=revision,
                cache_dir=request.cache,
                allow_patterns=[*files, *WEIGHT_INDEX_FILES],
            )
        )
        if not with_weights:
            return folder
        commit = folder.name
        listing = _cached_listing(repo_id, commit, request.cache)
        weights = _wanted_weights(folder, listing)
        missing = [name for name in weights if not (folder / name).is_file()]
        if missing:
            logger.info("fetching %d weight file(s) of %s at %s", len(missing), request.label, commit)
            snapshot_download(repo_id, revision=commit, cache_dir=request.cache, allow_patterns=missing)
    missing = [name for name in weights if not (folder / name).is_file()]
    if weights and not missing:
        return folder
    if listing is None:
        raise _not_cached(request, partly=True)
    if not weights:
        raise CheckpointError(
            f"{kind} {request.label} has no weights on the Hub "
            f"(looked for {', '.join((*WEIGHT_INDEX_FILES, *SINGLE_WEIGHT_FILES))})"
        )
    raise CheckpointError(f"{kind} {request.label} is incomplete on the Hub: it lacks {', '.join(missing)}")


def _cached_listing(repo_id: str, commit: str, cache: Path) -> set[str] | None:
    """The repository's file names at ``commit`` as listed by an earlier online snapshot; None if never."""
    try:
        return {entry.path for entry in get_cached_repo_tree(repo_id, revision=commit, cache_dir=cache)}
    except CachedRepoTreeNotFoundError:
        return None


def _wanted_weights(folder: Path, listing: set[str] | None) -> list[str]:
    """The weight files to have in ``folder``: the shards of a cached index, else the preferred single file.

    Single files are looked up in the repository listing when known, else among the files already on disk.
    An empty list means no weight format is available.
    """
    for index in WEIGHT_INDEX_FILES:
        if (folder / index).is_file():
            return index_shard_names(folder / index)
    available = listing if listing is not None else {path.name for path in folder.iterdir()}
    return next(([name] for name in SINGLE_WEIGHT_FILES if name in available), [])


@contextmanager
def _hub_errors(request: _Request) -> Iterator[None]:
    """Re-raise huggingface-hub, network and disk errors from inside the block as one-line GlusErrors."""
    try:
        yield
    except Exception as error:
        translated = _translate(error, request)
        if translated is None:
            raise
        raise translated from error


def _translate(error: BaseException, request: _Request) -> GlusError | None:
    """The GlusError that explains ``error``, or None for errors that are bugs rather than circumstances."""
    what = f"{request.kind} {request.label}"
    if isinstance(error, RevisionNotFoundError):
        return CheckpointError(
            f"revision {request.revision} of {request.kind} {request.repo_id} does not exist on the Hub"
        )
    if isinstance(error, GatedRepoError):
        return CheckpointError(
            f"{what} is gated on the Hub: accept its terms at https://huggingface.co/{request.repo_id} "
            "and log in (`hf auth login` or HF_TOKEN)"
        )
    if isinstance(error, DisabledRepoError):
        return CheckpointError(f"{what} has been disabled on the Hub")
    if isinstance(error, RepositoryNotFoundError):
        return CheckpointError(
            f"{what} is neither a local folder nor a repository on the Hugging Face Hub "
            "(if it is private, log in with `hf auth login` or set HF_TOKEN)"
        )
    if isinstance(error, RemoteEntryNotFoundError):
        return CheckpointError(f"{what}: a file listed on the Hub cannot be downloaded")
    if isinstance(error, HfHubHTTPError):
        status = error.response.status_code
        if status in (401, 403):
            return CheckpointError(
                f"the Hub refused access to {what} ({status}); log in with `hf auth login` or set HF_TOKEN"
            )
        return NetworkError(f"the Hugging Face Hub answered {status} for {what}; try again later")
    if isinstance(error, IncompleteSnapshotError):
        return _not_cached(request, partly=True, cause=error)
    if isinstance(error, (LocalEntryNotFoundError, OfflineModeIsEnabled)):
        # snapshot_download reports some Hub answers (disabled repo, 5xx) as "not cached" with the answer
        # as the cause: explain the answer instead.
        if isinstance(error.__cause__, HfHubHTTPError) and not constants.is_offline_mode():
            return _translate(error.__cause__, request)
        return _not_cached(request, partly=False, cause=error)
    if isinstance(error, (httpx2.TransportError, ConnectionError, TimeoutError)):
        reason = one_line(error, with_type=True, limit=160)
        return NetworkError(
            f"could not download {what} from the Hugging Face Hub ({reason}); check the network "
            "(or HF_ENDPOINT and proxy settings) and run the command again to resume"
        )
    if isinstance(error, OSError) and error.errno in _DISK_FULL_ERRNOS:
        return OutputError(
            f"disk full while downloading {what} into {request.cache}; free space or set "
            "GLUS_WEIGHTS_DIR to a folder on a larger disk"
        )
    if isinstance(error, OSError) and error.errno in _NOT_WRITABLE_ERRNOS:
        return OutputError(
            f"cannot write the download cache {request.cache} ({error.strerror}); "
            "set GLUS_WEIGHTS_DIR to a writable folder"
        )
    return None


def _not_cached(request: _Request, *, partly: bool, cause: BaseException | None = None) -> NetworkError:
    """The error for "needed from the Hub, but offline or unreachable, and not (fully) cached"."""
    state = "only partly in" if partly else "not in"
    what = f"{request.kind} {request.label}"
    if constants.is_offline_mode():
        return NetworkError(
            f"{what} is {state} the local cache ({request.cache}) and offline mode is on (HF_HUB_OFFLINE=1); "
            f"{request.hint}"
        )
    reason = (
        one_line(cause.__cause__ or cause, with_type=True, limit=160)
        if cause is not None
        else "no file listing cached"
    )
    return NetworkError(
        f"could not reach the Hugging Face Hub ({reason}) and {what} is {state} the local cache "
        f"({request.cache}); check the network (or HF_ENDPOINT and proxy settings){request.local_option}"
    )


# --- Listing the cache ---


@dataclass(frozen=True)
class ModelStatus:
    """One checkpoint or vision tower and its state in the local cache."""

    repo_id: str
    kind: Kind
    entry: ModelEntry | VisionTowerEntry | None  # None: found in the cache, not in the manifest
    revision: str
    cached: bool  # a snapshot for `revision` is in the cache
    complete: bool  # that snapshot has the config, tokenizer/processor files and every weight file
    size_bytes: int  # bytes on disk of that snapshot (0 when not cached)
    path: Path | None  # the snapshot folder, when cached


def list_models() -> list[ModelStatus]:
    """The manifest's checkpoints and vision towers with their cache state, then other cached checkpoints.

    A cached repository that is not in the manifest is listed when its ``config.json`` names a vision
    tower (a LLaVA-style checkpoint such as a GLUS fine-tune); its ``main`` snapshot is described, else its
    most recent one.
    """
    manifest = load_manifest()
    repos = _cached_repos(weights_dir())
    statuses = [
        _status(entry.repo_id, "checkpoint", entry, entry.revision, repos.get(entry.repo_id))
        for entry in manifest.models
    ]
    statuses += [
        _status(tower.repo_id, "vision tower", tower, tower.revision, repos.get(tower.repo_id))
        for tower in manifest.vision_towers
    ]
    listed = {status.repo_id for status in statuses}
    for repo_id in sorted(set(repos) - listed):
        status = _status(repo_id, "checkpoint", None, constants.DEFAULT_REVISION, repos[repo_id])
        if status.path is not None and _names_vision_tower(status.path):
            statuses.append(status)
    return statuses


def _cached_repos(cache: Path) -> dict[str, CachedRepoInfo]:
    """Model repositories in the cache, by repo id."""
    try:
        info = scan_cache_dir(cache)
    except (CacheNotFound, ValueError):
        return {}
    for warning in info.warnings:
        logger.debug("skipped in %s: %s", cache, warning)
    return {repo.repo_id: repo for repo in info.repos if repo.repo_type == "model"}


def _status(
    repo_id: str,
    kind: Kind,
    entry: ModelEntry | VisionTowerEntry | None,
    revision: str,
    repo: CachedRepoInfo | None,
) -> ModelStatus:
    snapshot = _find_snapshot(repo, revision, fallback_to_latest=entry is None) if repo is not None else None
    if snapshot is None:
        return ModelStatus(repo_id, kind, entry, revision, False, False, 0, None)
    path = Path(snapshot.snapshot_path)
    return ModelStatus(
        repo_id=repo_id,
        kind=kind,
        entry=entry,
        revision=revision,
        cached=True,
        complete=_is_complete(path, kind),
        size_bytes=int(snapshot.size_on_disk),
        path=path,
    )


def _find_snapshot(
    repo: CachedRepoInfo, revision: str, *, fallback_to_latest: bool
) -> CachedRevisionInfo | None:
    """The cached revision for a ref or commit; for unlisted repos, else the most recently modified one."""
    if revision in repo.refs:
        return repo.refs[revision]
    for cached in repo.revisions:
        if cached.commit_hash == revision:
            return cached
    if fallback_to_latest and repo.revisions:
        return max(repo.revisions, key=lambda cached: cached.last_modified)
    return None


def _is_complete(folder: Path, kind: Kind) -> bool:
    if kind == "checkpoint":
        metadata = (folder / CONFIG_NAME).is_file() and any(
            (folder / name).is_file() for name in ("tokenizer.model", "tokenizer.json")
        )
    else:
        metadata = all((folder / name).is_file() for name in _VISION_TOWER_FILES)
    try:
        weights = _wanted_weights(folder, listing=None)
    except CheckpointError:
        return False
    return metadata and bool(weights) and all((folder / name).is_file() for name in weights)


def _names_vision_tower(folder: Path) -> bool:
    try:
        checkpoint_vision_tower(folder)
    except CheckpointError:
        return False
    return True


def _folder_size(folder: Path) -> int:
    """Bytes of the files under ``folder``, following the cache's symlinks to their blobs."""
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())
