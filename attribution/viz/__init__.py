"""Figures and tables of results (plotly, pandas): drawn by the page, the corpus report and notebooks."""
