"""The Hugging Face hub's HTTP API, the two calls we need: list a dataset repo's files at a pinned
revision (with each LFS file's size and sha256, so a download is checked against the hub's own
checksum), and the URL that serves one file. `$HF_ENDPOINT` (the hub clients' own variable) points
both at a mirror. `$HF_TOKEN` goes to the hub alone: huggingface.co over https, or $HF_ENDPOINT's origin
when it is set; never through $ONECYCLE_DATA_MIRROR, to the CDN a file redirects to, or to another host
a listing names as its next page.

Why not `datasets.load_dataset`: it cannot resume a cut download, keeps its copy in its own cache
outside the data root, and checks no checksum; the files it would read are these parquet files.
"""
from __future__ import annotations

import json
import os
import re
import urllib.error
from dataclasses import dataclass
from urllib.parse import quote, urljoin, urlsplit

from .download import MIRROR_ENV, DataError, mirrored, open_url

DEFAULT_ENDPOINT = "https://huggingface.co"


@dataclass(frozen=True)
class HubFile:
    path: str  # in the repo
    size: int
    sha256: str | None  # the LFS object id; None for a small file kept in git


def endpoint() -> str:
    return (os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")


def origin(url: str) -> tuple:
    """(scheme, host, port): the token's scope, so http or another port of the same host is another."""
    parts = urlsplit(url)
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme.lower())
    return parts.scheme.lower(), (parts.hostname or "").lower(), port


def token_header(url: str) -> dict:
    """`Authorization` for a request to `url`, only where the request goes to the hub itself (the
    token is the user's account: a mirror or a host a response names must not see it)."""
    token = os.environ.get("HF_TOKEN")
    hubs = {origin(DEFAULT_ENDPOINT), *([origin(endpoint())] if os.environ.get("HF_ENDPOINT") else [])}
    if not token or os.environ.get(MIRROR_ENV) or origin(url) not in hubs:
        return {}
    return {"Authorization": f"Bearer {token}"}


def file_url(repo: str, revision: str, path: str) -> str:
    return f"{endpoint()}/datasets/{repo}/resolve/{revision}/{quote(path)}"


def list_files(repo: str, revision: str, folder: str = "") -> list[HubFile]:
    """Every file under `folder` of the dataset repo at `revision`, following the API's pages."""
    url = (f"{endpoint()}/api/datasets/{repo}/tree/{revision}" + (f"/{quote(folder, safe='')}" if folder else "")
           + "?recursive=true")
    files = []
    while url:
        try:
            with open_url(url, private=token_header(url)) as response:
                page = json.load(response)
                link = next_page(response.headers.get("Link"))
                url = urljoin(url, link) if link else None  # checked for the token like any other URL
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
