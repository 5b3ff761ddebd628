"""A model repository on the Hugging Face hub, downloaded into huggingface_hub's cache.

slm uses `huggingface_hub` for one thing here: to fetch the few files that
`import_hf` reads (config.json, the safetensors weights, tokenizer.json, the
chat template) into the usual cache (`HF_HOME`, `HF_HUB_CACHE`), with the
usual token (`hf auth login`, `HF_TOKEN`), endpoint (`HF_ENDPOINT`) and
offline switch (`HF_HUB_OFFLINE`). A second import of the same revision finds
the files in the cache and downloads nothing; an interrupted one resumes.

The repository is listed first, so that a repo holding only pickled weights
(pytorch_model.bin) is refused before anything is downloaded (unpickling a
stranger's file can run code), and so is one whose weights could not fit in
memory even as float32 (`fits.py`; the exact check follows the download).
Files come one at a time through `hf_hub_download`, whose progress contract
is one object per file with `total` and `update(n)`; slm adds those bytes up
into one `progress(done, total)` callback, so the CLI draws a single rich bar.
(snapshot_download's own `tqdm_class` drives three bars at once, told apart
only by their wording.)
Offline, the cached snapshot is used as `snapshot_download` finds it.

Every failure becomes one line that says what to do; no huggingface_hub type
leaves this module.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable
from pathlib import Path

from ..data.formats import require
from ..data.hub import first_line, is_network_error, network_reason
from .fits import WeightsSize, check_fits

Progress = Callable[[int, int], None]  # (bytes done, bytes in all)

# What import_hf reads, at the top of the repo; nothing else is downloaded.
WANTED = (
    "config.json",
    "generation_config.json",
    "*.safetensors",
    "model.safetensors.index.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "chat_template.jinja",
    "chat_template.json",
)
PICKLES = ("*.bin", "*.pt", "*.pth", "*.ckpt", "*.pkl")
_REPO_ID = re.compile(r"^[\w.-]+(/[\w.-]+)?$")


def looks_like_repo_id(source: str) -> bool:
    """NAME or OWNER/NAME, as the hub spells repositories (and no local path could be mistaken)."""
    return bool(_REPO_ID.match(source)) and not source.startswith((".", "-"))


def download_model(
    repo_id: str, revision: str | None = None, progress: Progress | None = None
) -> Path:
    """The folder, in huggingface_hub's cache, holding what `import_hf` needs of `repo_id`."""
    require("huggingface_hub", "huggingface_hub", "hub")
    from huggingface_hub import constants, hf_hub_download

    if constants.HF_HUB_OFFLINE:
        return _cached_snapshot(repo_id, revision)
    try:
        sha, sizes = _listing(repo_id, revision)
        stored = sum(size for name, size in sizes.items() if name.endswith(".safetensors"))
        check_fits(repo_id, WeightsSize.at_least(stored))  # before downloading it
        folder = _fetch(repo_id, sha, sizes, progress)
        if revision != sha:  # one more look, which records the branch's commit in the
            # cache (refs/main), so that offline imports of the branch find this snapshot
            hf_hub_download(repo_id, "config.json", revision=revision)
        return folder
    except Exception as error:
        raise ValueError(_message(error, repo_id, revision)) from None


def _listing(repo_id: str, revision: str | None) -> tuple[str, dict[str, int]]:
    """The commit `revision` names, and the size of each wanted file in it."""
    from huggingface_hub import HfApi
    from huggingface_hub.hf_api import RepoFile

    api = HfApi()
    sha = api.model_info(repo_id, revision=revision).sha
    files = {
        entry.path: entry.size
        for entry in api.list_repo_tree(repo_id, revision=sha, recursive=False)
        if isinstance(entry, RepoFile)
    }
    wanted = {name: size for name, size in files.items() if _matches(name, WANTED)}
    if not any(name.endswith(".safetensors") for name in wanted):
        pickles = sorted(name for name in files if _matches(name, PICKLES))
        found = f"only {', '.join(pickles)}, pickles that" if pickles else "no weights, which"
        raise ValueError(
            f"{repo_id} has {found} slm does not load (unpickling can run code); "
            "pick a repo with model.safetensors, or convert it with transformers' "
            "save_pretrained(safe_serialization=True) and import that folder"
        )
    if "config.json" not in wanted:
        raise ValueError(f"{repo_id} has no config.json; is it a transformers model?")
    return sha, wanted


def _matches(name: str, patterns: tuple[str, ...]) -> bool:
    return "/" not in name and any(fnmatch.fnmatch(name, pattern) for pattern in patterns)


def _fetch(repo_id: str, sha: str, sizes: dict[str, int], progress: Progress | None) -> Path:
    """Each file into the cache (a cached one costs no download), the bytes summed for
    `progress`; returns the snapshot folder."""
    from huggingface_hub import hf_hub_download

    total, done = sum(sizes.values()), 0

    def advance(n: int) -> None:
        nonlocal done
        done += n
        if progress is not None:
            progress(done, total)

    folder = None
    for name in sorted(sizes, key=sizes.__getitem__):  # the weights, largest, last
        # at the commit, so that a file already in the cache is not even asked about
        start = done
        path = Path(hf_hub_download(repo_id, name, revision=sha, tqdm_class=_bar_class(advance)))
        advance(start + sizes[name] - done)  # cached files (no bar) and any rounding
        folder = path.parent
    return folder


def _bar_class(advance: Callable[[int], None]) -> type:
    """A stand-in for tqdm that hands each update to `advance` and draws nothing."""

    class Bar:
        def __init__(self, *args, initial: int = 0, **kwargs) -> None:
            if initial:
                advance(int(initial))  # a resumed download starts part-way

        def __enter__(self) -> Bar:
            return self

        def __exit__(self, *exc) -> None:
            return None

        def update(self, n: float | None = 1) -> None:
            advance(int(n or 0))

        def __getattr__(self, name: str):  # close, refresh, set_postfix_str, update_transfer...
            return lambda *args, **kwargs: None

    return Bar


def _cached_snapshot(repo_id: str, revision: str | None) -> Path:
    """Offline: the snapshot already in the cache, or a line saying there is none."""
    from huggingface_hub import snapshot_download

    try:
        path = snapshot_download(
            repo_id, revision=revision, allow_patterns=list(WANTED), local_files_only=True
        )
    except Exception:
        raise ValueError(
            f"{repo_id} is not in the Hugging Face cache and offline mode is on "
            "(HF_HUB_OFFLINE); unset HF_HUB_OFFLINE to download it"
        ) from None
    return Path(path)


def _message(error: Exception, repo_id: str, revision: str | None) -> str:
    """One line for what went wrong, and what to do about it."""
    from huggingface_hub import constants
    from huggingface_hub.errors import (
        GatedRepoError,
        HFValidationError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    page = f"{constants.ENDPOINT}/{repo_id}"
    if isinstance(error, ValueError) and not isinstance(error, HFValidationError):
        return str(error)  # ours, already one line
    if isinstance(error, HFValidationError):
        return f"{repo_id!r} is neither a folder nor a hub model id (OWNER/NAME)"
    if isinstance(error, GatedRepoError):
        return (
            f"{repo_id} is a gated model: accept its terms at {page}, then log in with "
            "`hf auth login` or set HF_TOKEN"
        )
    if isinstance(error, RepositoryNotFoundError):
        return (
            f"no model {repo_id} on the hub ({constants.ENDPOINT}); check the name at "
            f"{page} (a private one needs `hf auth login` or HF_TOKEN)"
        )
    if isinstance(error, RevisionNotFoundError):
        return f"{repo_id} has no revision {revision!r}; give a branch, tag or commit of {page}"
    if is_network_error(error):
        return (
            f"cannot reach the Hugging Face hub at {constants.ENDPOINT} ({network_reason(error)}); "
            "check your network, set HF_ENDPOINT to a mirror, or HF_HUB_OFFLINE=1 to use "
            "models downloaded before"
        )
    return f"downloading {repo_id} failed: {first_line(error) or type(error).__name__}"
