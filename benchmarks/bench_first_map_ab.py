"""A/B of a new session's cached first map: two checkouts of the page served side by side, measured alternately.

    git worktree add /tmp/base <commit>
    python benchmarks/bench_first_map_ab.py /tmp/base . --repeats 10

Each folder's `streamlit run app.py` gets a free port; each server first computes the default pair once,
then every round opens a new browser context (1440 x 900) on each server in turn (the order alternates)
and times it from navigation start to the map's first painted frame, by the page's own clock
(page_driver.MAP_PAINTED_MARK_JS). Both run in the same minutes on the same machine, so
their ratio is fairer than two separate runs of bench_page.py on this shared, noisy machine.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from page_driver import MAP_PAINTED_MARK_JS, free_port, launch, map_painted_ms, wait_healthy  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folders", nargs="+", type=Path, help="checkouts holding app.py (two or more)")
    parser.add_argument("--repeats", type=int, default=10, help="new sessions per checkout")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    servers: dict[str, tuple[subprocess.Popen[bytes], str]] = {}
    try:
        for folder in args.folders:
            port = free_port()
            url = f"http://127.0.0.1:{port}"
            command = [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true"]
            command += ["--server.port", str(port), "--server.address", "127.0.0.1"]
            process = subprocess.Popen(command, cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
            servers[str(folder)] = (process, url)
            wait_healthy(url, process, 120)
        times: dict[str, list[float]] = {name: [] for name in servers}
        with sync_playwright() as playwright:
            browser = launch(playwright)
            try:

                def new_page() -> Any:
                    context = browser.new_context(viewport={"width": 1440, "height": 900})
                    context.add_init_script(MAP_PAINTED_MARK_JS)
                    return context.new_page()

                for _, url in servers.values():  # the default pair computed and cached once per server
                    page = new_page()
                    page.goto(url)
                    map_painted_ms(page)
                    page.context.close()
                for round_ in range(max(args.repeats, 1)):
                    names = list(servers) if round_ % 2 == 0 else list(servers)[::-1]
                    for name in names:
                        page = new_page()
                        page.goto(servers[name][1])
                        times[name].append(map_painted_ms(page) / 1000)
                        page.context.close()
            finally:
                browser.close()
    finally:
        for process, _ in servers.values():
            process.terminate()
            process.wait(timeout=30)
    load = os.getloadavg()[0]
    print(f"new session, cached pair, navigation start to the painted map ({os.cpu_count()} CPUs, load {load:.2f})")
    first = statistics.median(next(iter(times.values())))
    for name, seconds in times.items():
        median = statistics.median(seconds)
        spread = f"min {min(seconds):.3f}  max {max(seconds):.3f}"
        print(f"{name:40s} median {median:.3f} s  {spread}  ratio {median / first:.2f}")


if __name__ == "__main__":
    main()
