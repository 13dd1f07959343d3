"""The report renders in a real browser: headless Chromium loads report.html from disk, every image loads
(naturalWidth > 0) and the console stays silent.

How: Chromium's `--dump-dom` prints the DOM after the load event, and `--enable-logging=stderr` prints every
console message as a `CONSOLE` line. The test's copy of the report gets a small inline script that, on load,
writes the images' state and any uncaught errors into `data-` attributes of <body>, read back from the
dumped DOM. (The report itself has no script.) Two control pages check that the probe does see a console
message and a broken image, so a silent pass means something.

Needs Debian's `chromium` (/usr/bin/chromium). When it is missing the set-up installs it with apt-get if
running as root, else the tests are skipped with the reason.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

PROBE = """<script>
window.__errors = [];
window.addEventListener("error", e => window.__errors.push(String(e.message || (e.target && e.target.src) || e.type)), true);
window.addEventListener("load", () => {
  const imgs = [...document.images];
  document.body.dataset.imgs = JSON.stringify(imgs.map(i => i.complete && i.naturalWidth > 0));
  document.body.dataset.widths = JSON.stringify(imgs.map(i => i.naturalWidth));
  document.body.dataset.errors = JSON.stringify(window.__errors);
  document.body.dataset.tables = String(document.querySelectorAll("table").length);
  document.body.dataset.h1 = (document.querySelector("h1") || {}).textContent || "";
});
</script>"""
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--enable-logging=stderr", "--v=0",
         "--virtual-time-budget=10000", "--dump-dom"]


def _find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


@pytest.fixture(scope="module")
def chromium() -> str:
    path = _find_chromium()
    if path is None and hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        try:
            subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", "chromium"], env=env,
                           capture_output=True, timeout=600, check=False)
        except (OSError, subprocess.TimeoutExpired):
            pass
        path = _find_chromium()
    if path is None:
        pytest.skip("no chromium: not installed, and it cannot be installed here (apt-get install chromium needs "
                    "root and Debian's package lists)")
    return path


def render(chromium: str, page: Path, tmp: Path) -> tuple[dict, list[str]]:
    """(data attributes of <body> after load, console lines) of a page with the probe injected."""
    text = page.read_text(encoding="utf-8")
    probed = page.with_name(page.stem + ".probed.html")
    probed.write_text(text.replace("<body>", "<body>" + PROBE, 1), encoding="utf-8")
    profile = tmp / f"profile-{page.stem}"
    p = subprocess.run([chromium, *FLAGS, f"--user-data-dir={profile}", probed.resolve().as_uri()],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr[-2000:]
    body = re.search(r"<body([^>]*)>", p.stdout)
    assert body, p.stdout[:2000]
    attrs = {k: v for k, v in re.findall(r'data-([a-z0-9-]+)="([^"]*)"', body.group(1))}
    attrs = {k: v.replace("&quot;", '"').replace("&amp;", "&") for k, v in attrs.items()}
    console = [line for line in p.stderr.splitlines() if "CONSOLE" in line]
    return attrs, console


@pytest.fixture(scope="module")
def report_html(tmp_path_factory) -> Path:
    """A report with every section: lens pairs, two swept axes (heatmap), a diverged trial."""
    from bench.report import build_report
    from test_report import _synthetic

    tmp = tmp_path_factory.mktemp("browser")
    d = _synthetic(tmp / "study", lrs=(1e-4, 1e-3, 1e-2), batches=(64, 256), seeds=(0, 1),
                   diverge={("ns", "sine", 1)})
    return build_report(d, tmp / "out")["html"]


def test_report_renders_images_load_and_console_is_silent(chromium, report_html, tmp_path):
    attrs, console = render(chromium, report_html, tmp_path)
    assert "imgs" in attrs, f"the load handler did not run: {attrs}"
    loaded = json.loads(attrs["imgs"])
    n_img = report_html.read_text().count("<img")
    assert len(loaded) == n_img >= 8
    assert all(loaded), f"images that did not load: {[i for i, ok in enumerate(loaded) if not ok]}"
    assert all(w > 0 for w in json.loads(attrs["widths"]))
    assert json.loads(attrs["errors"]) == []
    assert console == [], console
    assert attrs["h1"].startswith("ganbench report: syn")
    assert int(attrs["tables"]) >= 5


def test_probe_sees_console_messages_and_broken_images(chromium, tmp_path):
    """The check is not blind: a console message and an undecodable image are both reported."""
    page = tmp_path / "control.html"
    page.write_text('<!DOCTYPE html><html><head><meta charset="utf-8"></head><body><h1>x</h1>'
                    '<img src="data:image/png;base64,AAAA" alt="broken">'
                    '<script>console.error("control-console-line")</script></body></html>')
    attrs, console = render(chromium, page, tmp_path)
    assert json.loads(attrs["imgs"]) == [False]
    assert any("control-console-line" in line for line in console), console
