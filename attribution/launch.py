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
import sys
from pathlib import Path
from typing import Any

from .errors import InputError

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
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
    """Become the Streamlit server (exec, not a child process: a SIGTERM to `pairlens page` stops the page
    instead of leaving an orphaned server on the port)."""
    if importlib.util.find_spec("streamlit") is None or importlib.util.find_spec("plotly") is None:
        raise InputError('The page needs the app extra: pip install "pairlens[app]" (streamlit, plotly, spaCy, ...).')
    folder = page_folder()
    command = page_command(args.port, args.host)
    if args.host not in LOCAL_HOSTS:
        print(f"pairlens page: WARNING: listening on {args.host} with no authentication; anyone who can reach it "
              "computes on this machine (docs/guides/security.md).", file=sys.stderr)  # fmt: skip
    print(f"pairlens page: http://{args.host}:{args.port} (Ctrl+C stops it)", file=sys.stderr, flush=True)
    os.chdir(folder)  # the page's .streamlit/config.toml applies
    os.execv(sys.executable, command)
    return 0  # not reached: the process is Streamlit now


def add_parser(subparsers: Any) -> None:
    page = subparsers.add_parser("page", help='start the browser page (needs pip install "pairlens[app]")')
    page.add_argument("--port", type=int, default=8501, help="port (default 8501)")
    page.add_argument(
        "--host", default="127.0.0.1",
        help="address to bind (default 127.0.0.1: this machine only, as make run; 0.0.0.0 serves others)",
    )  # fmt: skip
    page.set_defaults(func=run_page)
