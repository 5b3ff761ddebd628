"""The fake Hugging Face hub (fakehub.py) answers huggingface_hub as the real one does.

The data tests stream datasets through it; these check the parts they touch
less: model repos, downloads into the cache (ETag, commit, Range), offline
mode, a gated repo, and that an endpoint the fake lacks fails loudly.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from fakehub import hub_environment, serve

huggingface_hub = pytest.importorskip("huggingface_hub")

CONFIG = '{"n_layer": 2}'
WEIGHTS = bytes(range(256)) * 40


@pytest.fixture
def hub(tmp_path: Path):
    with serve(tmp_path / "hub") as hub:
        env = {"HF_ENDPOINT": hub.url, "HF_HOME": str(tmp_path / "hf"), "HF_TOKEN": None}
        with hub_environment(**env, HF_HUB_OFFLINE=None, HF_HUB_DISABLE_PROGRESS_BARS="1"):
            hub.add_repo("me/tiny", {"config.json": CONFIG, "weights/model.bin": WEIGHTS}, "models")
            yield hub
        assert hub.unhandled == []


def test_model_files_download_into_the_cache_at_the_repo_commit(hub):
    sha = hub.sha("me/tiny", "models")
    assert huggingface_hub.HfApi().model_info("me/tiny").sha == sha
    path = Path(huggingface_hub.hf_hub_download("me/tiny", "weights/model.bin"))
    assert path.read_bytes() == WEIGHTS and path.parts[-3:-1] == (sha, "weights")
    folder = Path(huggingface_hub.snapshot_download("me/tiny"))
    assert (folder / "config.json").read_text() == CONFIG
    heads = [r.path for r in hub.requests if r.method == "HEAD"]
    assert "/me/tiny/resolve/main/weights/model.bin" in heads  # the ETag and commit come first
    with hub_environment(HF_HUB_OFFLINE="1"):  # from the cache, asking nothing
        before = len(hub.requests)
        assert Path(huggingface_hub.hf_hub_download("me/tiny", "config.json")).read_text() == CONFIG
        assert len(hub.requests) == before


def test_ranges_listings_and_unknown_endpoints(hub):
    fs = huggingface_hub.HfFileSystem()
    assert fs.cat_file("me/tiny/weights/model.bin", start=3000, end=3010) == WEIGHTS[3000:3010]
    ranged = hub.requests[-1]  # fsspec reads ahead to the end of this small file
    assert ranged.headers["range"] == f"bytes=3000-{len(WEIGHTS) - 1}"
    assert ranged.sent == len(WEIGHTS) - 3000
    files = huggingface_hub.HfApi().list_repo_files("me/tiny")
    assert sorted(files) == ["config.json", "weights/model.bin"]
    api = huggingface_hub.HfApi()
    with pytest.raises(huggingface_hub.errors.RepositoryNotFoundError):
        api.model_info("me/nothing")
    with pytest.raises(huggingface_hub.errors.HfHubHTTPError):
        api.list_repo_commits("me/tiny")  # an endpoint the fake does not serve: a loud 404
    assert [r.path for r in hub.unhandled] == ["/api/models/me/tiny/commits/main"]
    hub.unhandled.clear()


def test_a_gated_repo_needs_the_token(hub):
    hub.gated.add("me/tiny")
    with pytest.raises(huggingface_hub.errors.GatedRepoError):
        huggingface_hub.hf_hub_download("me/tiny", "config.json")
    with hub_environment(HF_TOKEN=hub.token):
        path = huggingface_hub.hf_hub_download("me/tiny", "config.json")
        assert Path(path).read_text() == CONFIG
