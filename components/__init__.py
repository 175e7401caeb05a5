"""The PairLens page's parts: pure figure and table builders, URL state, cached backend, renderers.

Only `render` and `backend` import streamlit; everything else is plain Python that tests
can call on hand-built `Attribution` objects.
"""
