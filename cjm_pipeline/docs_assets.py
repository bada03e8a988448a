"""The scripts, styles and fonts of the Great Expectations Data Docs, made local.

GX's page templates load jQuery, Bootstrap, bootstrap-table, Font Awesome, Vega and its
logo from public CDNs: opened without a network, the index of validations stays blank
(bootstrap-table draws it) and every page is unstyled. ``make install`` fetches the same
releases once from the npm registry (``fetch``: pinned versions, each tarball checked
against the registry's sha512 integrity, only the files the pages use kept) into
``.tools/docs-assets``; after every Data Docs build the gate copies them into the site's
``static/vendor`` folder and points the pages written by that build at them
(``localize``). GX's own logo is not published on npm: the pages show a small local one
instead.

Licences: jQuery, Bootstrap, Popper, bootstrap-table and bootstrap-dark are MIT;
bootstrap-datepicker is Apache-2.0; Vega, Vega-Lite and vega-embed are BSD-3-Clause; Font
Awesome Free is MIT (code), SIL OFL 1.1 (fonts) and CC BY 4.0 (icons). None is committed
to this repository; each keeps its licence header.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import re
import shutil
import sys
import tarfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from cjm_pipeline.settings import PROJECT_ROOT

ASSETS_DIR = PROJECT_ROOT / ".tools" / "docs-assets"
REGISTRY = "https://registry.npmjs.org"
VENDOR = "vendor"  # the folder under the site's static/ that holds them


@dataclass(frozen=True)
class Package:
    name: str
    version: str
    integrity: str  # the registry's dist.integrity (sha512, base64)
    # file in the package -> the CDN addresses the GX templates load it from
    files: dict[str, tuple[str, ...]]
    folders: tuple[str, ...] = ()  # whole folders a stylesheet refers to (fonts)

    @property
    def tarball(self) -> str:
        base = self.name.rsplit("/", 1)[-1]
        return f"{REGISTRY}/{self.name}/-/{base}-{self.version}.tgz"

    @property
    def folder(self) -> str:
        return f"{self.name.replace('/', '__')}@{self.version}"


PACKAGES = (
    Package(
        "jquery",
        "3.7.1",
        "sha512-m4avr8yL8kmFN8psrbFFFmB/If14iN5o9nw/NgnnM+kybDJpRsAynV2BsfpTYrTRysYUdADVD7CkUUizgkpLfg==",
        {"dist/jquery.min.js": ("https://code.jquery.com/jquery-3.7.1.min.js",)},
    ),
    Package(
        "bootstrap",
        "4.3.1",
        "sha512-rXqOmH1VilAt2DyPzluTi2blhk17bO7ef+zLLPlWvG494pDxcM234pJ8wTc/6R40UWizAIIMgxjvxZg5kmsbag==",
        {
            "dist/css/bootstrap.min.css": (
                "https://maxcdn.bootstrapcdn.com/bootstrap/4.3.1/css/bootstrap.min.css",
            ),
            "dist/js/bootstrap.min.js": (
                "https://stackpath.bootstrapcdn.com/bootstrap/4.3.1/js/bootstrap.min.js",
            ),
        },
    ),
    Package(
        "popper.js",
        "1.12.9",
        "sha512-s0EEi9xiSCdqz9lV4IiVH5yIZnDX/U1t0tCjB+0jXx9jW8lrR7kOpVupiUg175ogqVoudpDXHF1p6dKATCHMeg==",
        {
            "dist/umd/popper.min.js": (
                "https://cdnjs.cloudflare.com/ajax/libs/popper.js/1.12.9/umd/popper.min.js",
            )
        },
    ),
    Package(
        "bootstrap-table",
        "1.19.1",
        "sha512-WvV+l1AI/C+zThaKmfHmi/IuayVNB0qdFyEhFx1jyZhO0oLtNJNANkCR3rvJf6Dkh72dsLElxpE/bzK9seEQLA==",
        {
            "dist/bootstrap-table.min.js": (
                "https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.js",
            ),
            "dist/bootstrap-table.min.css": (
                "https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.css",
            ),
            "dist/extensions/filter-control/bootstrap-table-filter-control.min.js": (
                "https://unpkg.com/bootstrap-table@1.19.1/dist/extensions/filter-control/"
                "bootstrap-table-filter-control.min.js",
            ),
            # Some templates still name 1.19.0's stylesheet: 1.19.1's is the same rules.
            "dist/extensions/filter-control/bootstrap-table-filter-control.min.css": (
                "https://unpkg.com/bootstrap-table@1.19.0/dist/extensions/filter-control/"
                "bootstrap-table-filter-control.min.css",
                "https://unpkg.com/bootstrap-table@1.19.0/dist/extensions/filter-control/"
                "bootstrap-table-filter-control.css",
            ),
        },
    ),
    Package(
        "bootstrap-datepicker",
        "1.9.0",
        "sha512-9rYYbaVOheGYxjOr/+bJCmRPihfy+LkLSg4fIFMT9Od8WwWB/MB50w0JO1eBgKUMbb7PFHQD5uAfI3ArAxZRXA==",
        {
            "dist/js/bootstrap-datepicker.min.js": (
                "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/js/"
                "bootstrap-datepicker.min.js",
            ),
            "dist/css/bootstrap-datepicker.min.css": (
                "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/css/"
                "bootstrap-datepicker.min.css",
            ),
        },
    ),
    Package(
        "@fortawesome/fontawesome-free",
        "6.6.0",
        "sha512-60G28ke/sXdtS9KZCpZSHHkCbdsOGEhIUGlwq6yhY74UpTiToIh8np7A8yphhM4BWsvNFtIvLpi4co+h9Mr9Ow==",
        {
            "css/all.min.css": (
                "https://cdnjs.cloudflare.com/ajax/libs/font-awesome/6.6.0/css/all.min.css",
            )
        },
        folders=("webfonts",),
    ),
    Package(
        "@forevolve/bootstrap-dark",
        "1.1.0",
        "sha512-A3ucpEpxPoTVO490lZZCfjPXxv832l7mm1IxX3bXyxvgwnPGXDLyh7dWrphXKO8YBAu3EswbBEu3VSW8NRMW3A==",
        {
            "dist/css/bootstrap-prefers-dark.css": (
                "https://cdn.jsdelivr.net/npm/@forevolve/bootstrap-dark@1.1.0/dist/css/"
                "bootstrap-prefers-dark.css",
            )
        },
    ),
    # jsDelivr serves a bare "npm/vega@5" as the newest 5.x build: pinned here.
    Package(
        "vega",
        "5.33.1",
        "sha512-1fArfVDUqVbb5z8n+/nVQb+VNBzx8svY6CrsyTK4Ujm4yrd9I1auoKxBAPXLCavY1LcrbHUskQbGUP8gXOzyQw==",
        {"build/vega.min.js": ("https://cdn.jsdelivr.net/npm/vega@5",)},
    ),
    Package(
        "vega-lite",
        "5.23.0",
        "sha512-l4J6+AWE3DIjvovEoHl2LdtCUkfm4zs8Xxx7INwZEAv+XVb6kR6vIN1gt3t2gN2gs/y4DYTs/RPoTeYAuEg6mA==",
        {"build/vega-lite.min.js": ("https://cdn.jsdelivr.net/npm/vega-lite@5",)},
    ),
    Package(
        "vega-embed",
        "6.29.0",
        "sha512-PmlshTLtLFLgWtF/b23T1OwX53AugJ9RZ3qPE2c01VFAbgt3/GSNI/etzA/GzdrkceXFma+FDHNXUppKuM0U6Q==",
        {"build/vega-embed.min.js": ("https://cdn.jsdelivr.net/npm/vega-embed@6",)},
    ),
)

# GX's logos live on its own web host; a small local mark stands in for them.
LOGO = "cjm-data-quality.svg"
LOGO_ADDRESSES = (
    "https://great-expectations-web-assets.s3.us-east-2.amazonaws.com/logo-long.png",
    "https://great-expectations-web-assets.s3.us-east-2.amazonaws.com/full_logo_dark.png",
)
LOGO_SVG = (
    '<svg xmlns="http://www.w3.org/2000/svg" width="220" height="40" viewBox="0 0 220 40">'
    '<rect x="2" y="8" width="24" height="24" rx="4" fill="#0072b2"/>'
    '<path d="M8 20l4 4 8-9" fill="none" stroke="#fff" stroke-width="3"/>'
    '<text x="34" y="26" font-family="sans-serif" font-size="15" fill="#333">'
    "cjm-pipeline data quality</text></svg>"
)


class AssetsError(RuntimeError):
    """The assets could not be fetched or do not match their pinned integrity."""


def installed(assets_dir: Path = ASSETS_DIR) -> bool:
    return all((assets_dir / p.folder / ".complete").exists() for p in PACKAGES)


def fetch(assets_dir: Path = ASSETS_DIR, progress=print) -> None:
    """Download each pinned package not yet fetched, check its integrity and keep the
    files the Data Docs use."""
    for package in PACKAGES:
        target = assets_dir / package.folder
        if (target / ".complete").exists():
            continue
        try:
            with urllib.request.urlopen(package.tarball, timeout=120) as response:
                data = response.read()
        except OSError as err:
            raise AssetsError(f"could not download {package.tarball}: {err}") from err
        algorithm, _, expected = package.integrity.partition("-")
        digest = base64.b64encode(hashlib.new(algorithm, data).digest()).decode()
        if digest != expected:
            raise AssetsError(
                f"{package.name}@{package.version}: the tarball does not match its pinned "
                f"integrity ({algorithm} {digest} != {expected})"
            )
        staging = assets_dir / f".{package.folder}.part"
        shutil.rmtree(staging, ignore_errors=True)
        wanted = set(package.files) | {"LICENSE", "LICENSE.txt", "LICENSE.md"}
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
            for member in archive.getmembers():
                inner = member.name.split("/", 1)[-1]
                keep = inner in wanted or any(inner.startswith(f"{f}/") for f in package.folders)
                if not member.isfile() or not keep or ".." in Path(inner).parts:
                    continue
                out = staging / inner
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_bytes(archive.extractfile(member).read())
        missing = [f for f in package.files if not (staging / f).exists()]
        if missing:
            raise AssetsError(f"{package.name}@{package.version} has no {', '.join(missing)}")
        (staging / ".complete").write_text(package.integrity + "\n")
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)
        progress(f"  docs assets: {package.name}@{package.version}")


def _replacements(page: Path, vendor: Path) -> dict[str, str]:
    """Each CDN address the templates use -> the local file, relative to the page."""

    def local(path: Path) -> str:
        return Path(os.path.relpath(path, page.parent)).as_posix()

    out = {}
    for package in PACKAGES:
        for inner, addresses in package.files.items():
            for address in addresses:
                out[address] = local(vendor / package.folder / inner)
    for address in LOGO_ADDRESSES:
        out[address] = local(vendor / LOGO)
    return out


def localize(site: Path, since: float = 0.0, assets_dir: Path = ASSETS_DIR) -> int:
    """Copy the assets into the site and point its pages written at or after ``since``
    (a time.time()) at them. Returns the number of pages changed; 0 when the assets are
    not installed (the pages keep their CDN addresses)."""
    if not installed(assets_dir):
        return 0
    vendor = site / "static" / VENDOR
    for package in PACKAGES:
        target = vendor / package.folder
        if not (target / ".complete").exists():
            shutil.copytree(assets_dir / package.folder, target, dirs_exist_ok=True)
    if not (vendor / LOGO).exists():
        (vendor / LOGO).write_text(LOGO_SVG)
    changed = 0
    pages = [p for p in site.rglob("*.html") if p.stat().st_mtime >= since - 1]
    styles = [p for p in (site / "static").rglob("*.css") if VENDOR not in p.parts]
    for page in [*pages, *styles]:
        text = page.read_text(encoding="utf-8")
        new = text
        for address, path in _replacements(page, vendor).items():
            # The whole address up to its closing quote or parenthesis, with any query
            # (the logo's cache-buster), and nothing that merely starts with it.
            pattern = re.escape(address) + r"(\?[^\"')\s]*)?(?=[\"')\s])"
            new = re.sub(pattern, path.replace("\\", "/"), new)
        if page.suffix == ".html":
            new = TAG.sub(lambda m, page=page: _without_cdn_integrity(m.group(0), page), new)
        if new != text:
            page.write_text(new, encoding="utf-8")
            changed += 1
    return changed


TAG = re.compile(r"<(?:script|link)\b[^>]*\bintegrity=[^>]*>")
INTEGRITY = re.compile(r'\s+integrity="(sha256|sha384|sha512)-([^"]+)"')
CROSSORIGIN = re.compile(r'\s+crossorigin="[^"]*"')
SOURCE = re.compile(r'\b(?:src|href)="([^"]+)"')


def _without_cdn_integrity(tag: str, page: Path) -> str:
    """A tag the templates load with subresource integrity from a CDN, now pointing at
    the local copy: a browser checks integrity only on a CORS fetch, which a file://
    page cannot make, so the check is made here instead (the local file's digest must
    equal the template's) and the attributes are dropped. A file that differs keeps
    them, and the browser refuses it rather than run other code."""
    source, integrity = SOURCE.search(tag), INTEGRITY.search(tag)
    if not source or not integrity or f"static/{VENDOR}/" not in source.group(1):
        return tag
    local = (page.parent / source.group(1)).resolve()
    if not local.is_file():
        return tag
    digest = base64.b64encode(hashlib.new(integrity.group(1), local.read_bytes()).digest())
    if digest.decode() != integrity.group(2):
        return tag
    return CROSSORIGIN.sub("", INTEGRITY.sub("", tag))


def main() -> int:
    try:
        fetch()
    except AssetsError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    started = time.perf_counter()
    code = main()
    if not code:
        print(f"Data Docs assets in {ASSETS_DIR} ({time.perf_counter() - started:.1f} s)")
    sys.exit(code)
