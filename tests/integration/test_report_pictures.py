"""report.html as a person sees it: rendered by headless Chromium, measured and photographed.

For the journals of real storm, node-loss and partition runs (tests/data/journals) and for a storm run here
and now: every label's box, as Chromium lays it out, overlaps no other and stays inside its picture; a
screenshot is taken (kept under $DRILL_SCREENSHOT_DIR when set, to be looked at). Skipped, saying why,
where Chromium is not installed (scripts/test.sh installs Debian's `chromium` when run as root)."""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

from drillkit.reports import html_report

from .conftest import ROOT, make_config

JOURNALS = ROOT / "tests" / "data" / "journals"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="chromium is not installed (Debian: apt-get install chromium; scripts/test.sh does it as root)",
)

# Measures every <text> of every <svg> as laid out; written into the page for --dump-dom to print.
MEASURE = """
<script>
const found = [];
document.querySelectorAll("svg").forEach((svg, n) => {
  const width = svg.viewBox.baseVal.width, height = svg.viewBox.baseVal.height;
  const boxes = [...svg.querySelectorAll("text")].map(t => [t.textContent, t.getBBox()]);
  boxes.forEach(([text, b], i) => {
    if (b.x < -0.5 || b.y < -0.5 || b.x + b.width > width + 0.5 || b.y + b.height > height + 0.5)
      found.push(`svg ${n} '${svg.getAttribute("aria-label")}': '${text}' leaves the picture`);
    boxes.slice(i + 1).forEach(([other, c]) => {
      const apart = b.x + b.width <= c.x + 0.5 || c.x + c.width <= b.x + 0.5 ||
                    b.y + b.height <= c.y + 0.5 || c.y + c.height <= b.y + 0.5;
      if (!apart) found.push(`svg ${n} '${svg.getAttribute("aria-label")}': '${text}' overlaps '${other}'`);
    });
  });
});
const out = document.createElement("pre");
out.id = "layout-check";
out.textContent = JSON.stringify({svgs: document.querySelectorAll("svg").length, problems: found});
document.body.appendChild(out);
</script>
"""


def chromium(*args: str, profile: Path) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    argv = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
        f"--user-data-dir={profile}",
        *args,
    ]
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)


def layout_problems(page: Path, tmp_path: Path) -> dict:
    measured = tmp_path / f"measured-{page.parent.name}.html"
    measured.write_text(page.read_text().replace("</body>", MEASURE + "</body>"))
    out = chromium("--dump-dom", measured.as_uri(), profile=tmp_path / "profile")
    found = re.search(r'<pre id="layout-check">(.*?)</pre>', out.stdout, re.DOTALL)
    assert found, f"chromium did not run the measure: {out.returncode}\n{out.stderr[-2000:]}"
    return json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&").replace("&lt;", "<"))


def png_facts(path: Path) -> tuple[int, int, int]:
    """Width, height and the number of distinct byte values in its pixels (a blank page has a handful)."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    chunks, at = [], 8
    while at < len(data):
        (length,) = struct.unpack(">I", data[at : at + 4])
        if data[at + 4 : at + 8] == b"IDAT":
            chunks.append(data[at + 8 : at + 8 + length])
        at += 12 + length
    return width, height, len(set(zlib.decompress(b"".join(chunks))))


def photograph(page: Path, tmp_path: Path, name: str) -> Path:
    keep = os.environ.get("DRILL_SCREENSHOT_DIR")
    shots = Path(keep) if keep else tmp_path
    shots.mkdir(parents=True, exist_ok=True)
    png = shots / f"{name}.png"
    out = chromium("--window-size=1100,2400", f"--screenshot={png}", page.as_uri(), profile=tmp_path / "profile")
    assert png.is_file(), f"no screenshot: {out.returncode}\n{out.stderr[-2000:]}"
    width, height, shades = png_facts(png)
    assert (width, height) == (1100, 2400) and shades > 100, (width, height, shades)
    return png


def check_page(page: Path, tmp_path: Path, name: str) -> None:
    text = page.read_text()
    assert "<script" not in text  # the report itself loads and runs nothing
    facts = layout_problems(page, tmp_path)
    assert facts["svgs"] >= 4 and facts["problems"] == [], facts["problems"]
    print(f"{name}: screenshot {photograph(page, tmp_path, name)}")


@pytest.mark.parametrize("name", ["storm", "node-loss", "partition"])
def test_real_runs_reports_read_cleanly_in_chromium(name, tmp_path):
    report_dir = tmp_path / name
    report_dir.mkdir()
    (report_dir / "journal.json").write_text((JOURNALS / f"{name}.json").read_text())
    check_page(html_report.rerender(report_dir), tmp_path, name)


def test_a_storm_run_here_reads_cleanly_in_chromium(tmp_path, project_state):
    config = make_config(tmp_path / "cfg", project_state)
    report_dir = tmp_path / "storm-now"
    try:
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "invoke",
                "drill.storm",
                "--invocations",
                "10",
                "--kills",
                "1",
                "--llm",
                "stub",
                "--config",
                str(config),
                "--report-dir",
                str(report_dir),
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
    finally:
        subprocess.run(
            [sys.executable, "-m", "invoke", "down", "--purge", "--config", str(config)],
            cwd=ROOT,
            capture_output=True,
            check=False,
        )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    page = report_dir / "report.html"
    assert "<h2>All 10 invocations</h2>" in page.read_text()
    check_page(page, tmp_path, "storm-now")
