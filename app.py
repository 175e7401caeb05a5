"""PairLens: `streamlit run app.py`. The pages and their names in the sidebar; the pages live in pages/."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

# The library and the pages' parts, imported by their package names before any page runs. Two runs of one
# session overlap when a page link is clicked while the first page is still importing (torch takes
# seconds): a page's `from attribution.ranking import ...` would then find the half-imported package and
# import its parts alongside the first run: both pages failed, and sometimes later visitors' pages too.
# `import attribution` instead waits until the first run has imported it.
import attribution  # noqa: F401
from components import backend, corpus_page, faithfulness, rank, render  # noqa: F401

PAGES = Path(__file__).resolve().parent / "pages"
ASSETS = Path(__file__).resolve().parent / "assets"

st.set_page_config(
    page_title="PairLens",
    page_icon=str(ASSETS / "favicon.png"),
    layout="wide",
    menu_items={"About": "PairLens explains sentence-encoder similarity with integrated Jacobians."},
)
pages = [
    st.Page(PAGES / "explain.py", title="Explain a pair", icon=":material/compare_arrows:", default=True),
    st.Page(PAGES / "corpus.py", title="Corpus analysis", icon=":material/dataset:", url_path="Corpus"),
    st.Page(PAGES / "rank.py", title="Rank candidates", icon=":material/sort:", url_path="Rank"),
]
# Streamlit's own sidebar menu is off (.streamlit/config.toml): with a pages/ folder it first lists
# the files (app, corpus, explain) until this script has run. These links are the only menu.
navigation = st.navigation(pages, position="hidden")
with st.sidebar:
    for page in pages:
        st.page_link(page)
navigation.run()
