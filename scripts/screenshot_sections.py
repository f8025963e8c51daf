"""Screenshots of sections of an esclab HTML report, for the README (256-colour PNGs, a few hundred kB).

Usage: ``python scripts/screenshot_sections.py docs/example-run/report.html docs/screenshots/report \\
       --section summary --section gallery`` writes ``report_summary.png`` and ``report_gallery.png``.
Each section is shot from its heading down, at most ``--max-height`` CSS pixels.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from playwright.sync_api import sync_playwright
from screenshot_serve import CHROMIUM, FLAGS, save_256_colours  # scripts/ is on sys.path when run as a script


def shoot(page_path: Path, prefix: Path, sections: list[str], width: int, max_height: int) -> list[Path]:
    written = []
    with tempfile.TemporaryDirectory() as profile, sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(profile, executable_path=CHROMIUM, headless=True,
                                                        args=FLAGS, viewport={"width": width, "height": 1000})
        page = context.new_page()
        page.goto(page_path.resolve().as_uri())
        for name in sections:
            box = page.locator(f"#{name}").bounding_box()
            if box is None:
                raise SystemExit(f"{page_path} has no section #{name}")
            png = prefix.with_name(f"{prefix.name}_{name}.png")
            page.screenshot(path=str(png), full_page=True,
                            clip={"x": 0, "y": box["y"], "width": width, "height": min(box["height"], max_height)})
            save_256_colours(png)
            written.append(png)
        context.close()
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("page", type=Path)
    parser.add_argument("prefix", type=Path, help="output path prefix; _SECTION.png is added")
    parser.add_argument("--section", action="append", required=True, help="section anchor, repeatable")
    parser.add_argument("--width", type=int, default=1200)
    parser.add_argument("--max-height", type=int, default=1100)
    args = parser.parse_args()
    for png in shoot(args.page, args.prefix, args.section, args.width, args.max_height):
        print(f"{png}: {png.stat().st_size // 1024} kB")


if __name__ == "__main__":
    main()
