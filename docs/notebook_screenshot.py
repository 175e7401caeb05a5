"""Renders docs/notebook.png: a notebook cell and the heatmap `Attribution.show()` displays.

python docs/notebook_screenshot.py      # needs Debian chromium and Playwright (as the browser tests)
"""

import html
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from page_driver import launch  # noqa: E402
from playwright.sync_api import sync_playwright  # noqa: E402

from attribution import explain, load_model  # noqa: E402
from attribution.viz.notebook import figure  # noqa: E402

model = load_model("all-MiniLM-L6-v2")
res = explain(model, "A man is playing a guitar on stage.", "Someone performs music with an instrument.")
fig = figure(res, pos_overlay=True)
body = fig.to_html(full_html=False, include_plotlyjs=True, config={"displaylogo": False})
code = """from attribution import explain, load_model

res = explain(load_model("all-MiniLM-L6-v2"),
              "A man is playing a guitar on stage.",
              "Someone performs music with an instrument.")
res.show(pos_overlay=True)   # or just: res"""
page_html = f"""<html><head><style>
body {{ font-family: 'DejaVu Sans', Arial, sans-serif; margin: 16px; background: #fff; }}
.cell {{ display: flex; gap: 10px; }}
.prompt {{ color: #307fc1; font-family: monospace; width: 64px; text-align: right; padding-top: 8px; }}
.out .prompt {{ color: #bf5b3d; }}
pre {{ background: #f5f5f5; border: 1px solid #e0e0e0; padding: 8px 10px; margin: 0; font-size: 13px; width: 640px; }}
</style></head><body>
<div class='cell'><div class='prompt'>In&nbsp;[1]:</div><pre>{html.escape(code)}</pre></div>
<div class='cell out'><div class='prompt'>Out[1]:</div><div>{body}</div></div>
</body></html>"""
with sync_playwright() as p:
    b = launch(p)
    page = b.new_page(viewport={"width": 820, "height": 900}, device_scale_factor=1.5)
    page.set_content(page_html, wait_until="load")
    page.wait_for_selector(".js-plotly-plot .nsewdrag")
    page.wait_for_timeout(800)
    box = page.locator(".out").bounding_box()
    height = int(box["y"] + box["height"]) + 12
    page.set_viewport_size({"width": 820, "height": height})
    page.screenshot(path=str(ROOT / "docs" / "notebook.png"))
    b.close()
print("ok", height)
