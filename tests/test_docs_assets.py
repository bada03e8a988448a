"""The Data Docs' CDN addresses pointed at local copies: every address the GX templates
use, the logo's cache-busting query, and the subresource-integrity check made here
because a file:// page cannot make it."""

from __future__ import annotations

import shutil
from pathlib import Path

from cjm_pipeline import docs_assets

# What GX 1.24's page template loads (addresses and SRI values as the template has them).
POPPER_SRI = "sha384-ApNbgh9B+Y1QKtv3Rn7W3mgPxhU9K/ScQsAP7hUibX39j7fakFPskvXusvfa0b4Q"
TEMPLATE = """<html><head>
<link rel="stylesheet" href="https://maxcdn.bootstrapcdn.com/bootstrap/4.3.1/css/bootstrap.min.css">
<link rel="stylesheet" href="https://cdnjs.cloudflare.com/ajax/libs/font-awesome/6.6.0/css/all.min.css">
<script src="https://code.jquery.com/jquery-3.7.1.min.js"></script>
<script src="https://cdnjs.cloudflare.com/ajax/libs/popper.js/1.12.9/umd/popper.min.js" \
integrity="{sri}" crossorigin="anonymous"></script>
<script src="https://cdn.jsdelivr.net/npm/vega@5"></script>
<script src="https://cdn.jsdelivr.net/npm/vega-lite@5"></script>
</head><body>
<img src="https://great-expectations-web-assets.s3.us-east-2.amazonaws.com/logo-long.png?d=20261203T140111Z">
<a href="https://greatexpectations.io">a link is not a request</a>
</body></html>
"""


def test_pages_point_at_the_local_copies(tmp_path: Path) -> None:
    assert docs_assets.installed(), "run `make install`: it fetches the Data Docs assets"
    page = tmp_path / "site" / "validations" / "suite" / "run.html"
    page.parent.mkdir(parents=True)
    page.write_text(TEMPLATE.format(sri=POPPER_SRI))
    (tmp_path / "site" / "static").mkdir()

    assert docs_assets.localize(tmp_path / "site") == 1
    html = page.read_text()
    assert "cdn" not in html and "unpkg" not in html and "amazonaws" not in html
    # Relative to the page, two folders down, into static/vendor.
    popper = "../../static/vendor/popper.js@1.12.9/dist/umd/popper.min.js"
    assert f'<script src="{popper}"></script>' in html  # the integrity was checked here
    assert 'src="../../static/vendor/cjm-data-quality.svg"' in html
    assert 'src="../../static/vendor/vega@5.33.1/build/vega.min.js"' in html
    assert 'src="../../static/vendor/vega-lite@5.23.0/build/vega-lite.min.js"' in html
    assert '<a href="https://greatexpectations.io">' in html
    for ref in ("popper.js@1.12.9/dist/umd/popper.min.js", "jquery@3.7.1/dist/jquery.min.js"):
        assert (tmp_path / "site" / "static" / "vendor" / ref).is_file()
    # The font files the stylesheet names sit where it looks for them.
    fonts = tmp_path / "site/static/vendor/@fortawesome__fontawesome-free@6.6.0/webfonts"
    assert (fonts / "fa-solid-900.woff2").is_file()
    # A second pass changes nothing.
    assert docs_assets.localize(tmp_path / "site") == 0


def test_a_copy_that_differs_from_the_cdn_file_keeps_its_integrity(tmp_path: Path) -> None:
    assets = tmp_path / "assets"
    shutil.copytree(docs_assets.ASSETS_DIR, assets)
    popper = assets / "popper.js@1.12.9" / "dist" / "umd" / "popper.min.js"
    popper.write_text(popper.read_text() + "\n// changed\n")
    page = tmp_path / "site" / "index.html"
    page.parent.mkdir()
    page.write_text(TEMPLATE.format(sri=POPPER_SRI))

    docs_assets.localize(tmp_path / "site", assets_dir=assets)
    html = page.read_text()
    # Pointed at the local copy, but the browser will check it and refuse it.
    assert f'popper.min.js" integrity="{POPPER_SRI}" crossorigin="anonymous"' in html


def test_the_pinned_tarballs_are_the_ones_fetched() -> None:
    for package in docs_assets.PACKAGES:
        stamp = docs_assets.ASSETS_DIR / package.folder / ".complete"
        assert stamp.read_text().strip() == package.integrity, package.name
