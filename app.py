"""PairLens: `streamlit run app.py`. The pages and their names in the sidebar; the pages live in pages/."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

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
