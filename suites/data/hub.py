"""The Hugging Face hub's HTTP API, the two calls we need: list a dataset repo's files at a pinned
revision (with each LFS file's size and sha256, so a download is checked against the hub's own
checksum), and the URL that serves one file. `$HF_ENDPOINT` (the hub clients' own variable) points
both at a mirror; `$HF_TOKEN` is sent to the hub only, never to the CDN it redirects to.

Why not `datasets.load_dataset`: it cannot resume a cut download, keeps its copy in its own cache
outside the data root, and checks no checksum; the files it would read are these parquet files.
"""
from __future__ import annotations

import json
import os
import re
import urllib.error
from dataclasses import dataclass
from urllib.parse import quote

from .download import DataError, mirrored, open_url

DEFAULT_ENDPOINT = "https://huggingface.co"


@dataclass(frozen=True)
class HubFile:
    path: str  # in the repo
    size: int
    sha256: str | None  # the LFS object id; None for a small file kept in git


def endpoint() -> str:
    return (os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")


def token_header() -> dict:
    token = os.environ.get("HF_TOKEN")
    return {"Authorization": f"Bearer {token}"} if token else {}


def file_url(repo: str, revision: str, path: str) -> str:
    return f"{endpoint()}/datasets/{repo}/resolve/{revision}/{quote(path)}"


def list_files(repo: str, revision: str, folder: str = "") -> list[HubFile]:
    """Every file under `folder` of the dataset repo at `revision`, following the API's pages."""
    url = (f"{endpoint()}/api/datasets/{repo}/tree/{revision}" + (f"/{quote(folder, safe='')}" if folder else "")
           + "?recursive=true")
    files = []
    while url:
        try:
            with open_url(url, private=token_header()) as response:
                page = json.load(response)
                url = next_page(response.headers.get("Link"))
        except urllib.error.HTTPError as exc:
            raise DataError(f"the hub listing {mirrored(url)} answered HTTP {exc.code} {exc.reason} "
                            f"(dataset {repo} at revision {revision})") from None
        for entry in page:
            if entry.get("type") == "file":
                lfs = entry.get("lfs") or {}
                files.append(HubFile(entry["path"], int(lfs.get("size", entry["size"])), lfs.get("oid")))
    return files


def next_page(link: str | None) -> str | None:
    """The `rel="next"` URL of an RFC 8288 Link header, as the hub paginates its listings."""
    match = re.search(r'<([^>]+)>;\s*rel="next"', link or "")
    return match.group(1) if match else None
