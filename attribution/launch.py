"""`pairlens page`: start the Streamlit page from an installed wheel or from a clone.

The page's files (app.py, pages/, components/, assets/, .streamlit/) live at the top of the repository,
where `make run` starts them; building the wheel copies them into attribution/_page/ (setup.py). This
module finds whichever copy exists and runs `python -m streamlit run app.py` in that folder (so the
page's .streamlit/config.toml applies). It imports nothing from Streamlit itself.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from .errors import InputError

PACKAGED = Path(__file__).resolve().parent / "_page"  # in an installed wheel
CLONE = Path(__file__).resolve().parent.parent  # a clone or an editable install


def page_folder() -> Path:
    """The folder holding app.py: the wheel's attribution/_page, else the clone's root. InputError when neither."""
    for folder in (PACKAGED, CLONE):
        if (folder / "app.py").is_file() and (folder / "components").is_dir():
            return folder
    raise InputError(
        "The page's files are not installed with this copy of PairLens: install the wheel "
        '(pip install "pairlens[app]") or run `make run` in a clone of the repository.'
    )


def page_command(port: int, host: str | None) -> list[str]:
    """The streamlit command line that `pairlens page` runs (in page_folder())."""
    command = [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port)]
    if host:
        command += ["--server.address", host]
    return command


def run_page(args: argparse.Namespace) -> int:
    if importlib.util.find_spec("streamlit") is None or importlib.util.find_spec("plotly") is None:
        raise InputError('The page needs the app extra: pip install "pairlens[app]" (streamlit, plotly, spaCy, ...).')
    folder = page_folder()
    command = page_command(args.port, args.host)
    print(f"pairlens page: http://{args.host or 'localhost'}:{args.port} (Ctrl+C stops it)", file=sys.stderr)
    try:
        return subprocess.call(command, cwd=folder, env=dict(os.environ))
    except KeyboardInterrupt:
        return 0


def add_parser(subparsers: Any) -> None:
    page = subparsers.add_parser("page", help='start the browser page (needs pip install "pairlens[app]")')
    page.add_argument("--port", type=int, default=8501, help="port (default 8501)")
    page.add_argument("--host", default=None, help="address to bind (default: Streamlit's own, all addresses)")
    page.set_defaults(func=run_page)
