"""Ships the page inside the wheel: app.py, pages/, components/, assets/ and .streamlit/ live at the top of
the repository (where `make run` starts them) and are copied into attribution/_page/ when the wheel is built,
so that `pairlens page` starts the same page from an installed wheel. Everything else is in pyproject.toml."""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
PAGE_FILES = ("app.py", "pages", "components", "assets", ".streamlit")


class BuildPyWithPage(build_py):
    def run(self) -> None:
        super().run()
        target = Path(self.build_lib) / "attribution" / "_page"
        for name in PAGE_FILES:
            source = ROOT / name
            if source.is_dir():
                left_out = shutil.ignore_patterns("__pycache__", "secrets.toml")  # never a local secret in a wheel
                shutil.copytree(source, target / name, dirs_exist_ok=True, ignore=left_out)
            elif source.is_file():
                target.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, target / name)


setup(cmdclass={"build_py": BuildPyWithPage})
