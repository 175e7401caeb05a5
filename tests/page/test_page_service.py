"""The page on the service: progress bars, letting go of work on a rerun or a closed session, the HTTP backend."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest.mock import Mock

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest
from test_app import TOY_INFOS, ToyModel, charts, toy_explain

from attribution import Cancelled, Run
from attribution.core import engine
from attribution.core.options import ExplainOptions
from attribution.result import Attribution
from attribution.service import JobManager, JobState, JobStatus, ResultCache
from attribution.service.cache import default_cache
from components import backend, render

APP = str(Path(__file__).resolve().parents[2] / "app.py")
UNITS = 60


@pytest.fixture(autouse=True)
def _fresh(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    st.cache_data.clear()
    backend.registry().clear()
    persistent = default_cache()
    if persistent is not None:
        persistent.clear()
    yield
    backend.get_backend.clear()


@pytest.fixture
def slow_toys(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[Any]]:
    """Toy models whose computation takes UNITS chunks of 0.1 s through the run's gate."""
    log: dict[str, list[Any]] = {"started": [], "finished": [], "cancelled": [], "progress": []}

    def explain(model: ToyModel, text_a: str, text_b: str, options: ExplainOptions, **kwargs: Any) -> Attribution:
        run: Run = kwargs["run"]
        if text_a == "warm":
            return toy_explain(model, text_a, text_b, options)
        log["started"].append((text_a, text_b))
        run.plan(UNITS)
        try:
            for _ in range(UNITS):
                with run.unit(1):
                    time.sleep(0.1)
        except Cancelled:
            log["cancelled"].append((text_a, run.done, time.perf_counter()))
            raise
        log["finished"].append((text_a, text_b))
        return toy_explain(model, text_a, text_b, options)

    def progress(slot: Any, fraction: float, text: str) -> None:
        log["progress"].append((fraction, text))
        slot.progress(fraction, text=text)

    monkeypatch.setattr(backend, "available_models", lambda: list(TOY_INFOS))
    monkeypatch.setattr(backend, "get_model", ToyModel)
    monkeypatch.setattr(engine, "explain", explain)
    monkeypatch.setattr(render, "render_progress", progress)
    page(a="warm", b="up").run()  # imports, tagger: the timed runs below start computing at once
    backend.registry().clear()
    return log


def page(**params: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    for key, value in {"model": "toy-one", **params}.items():
        at.query_params[key] = value
    return at


def stop_after(at: AppTest, seconds: float) -> float:
    """Run until `seconds` pass, then stop the script as a closed session does; when it stopped."""
    with pytest.raises(RuntimeError, match="timed out"):
        at.run(timeout=seconds)
    return time.perf_counter()


def wait_for(condition: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.02)


def test_progress_bar_then_a_closed_session_cancels_its_work(slow_toys: dict[str, list[Any]]) -> None:
    at = page(a="dogs run fast", b="puppies play")
    stopped = stop_after(at, 2.5)
    fractions = [f for f, _ in slow_toys["progress"]]
    assert fractions and 0 < max(fractions) < 1 and fractions == sorted(fractions)
    assert any("%" in text and "left" in text for _, text in slow_toys["progress"])
    wait_for(lambda: slow_toys["cancelled"], timeout=5)
    _, done, when = slow_toys["cancelled"][0]
    assert done < UNITS and when - stopped < backend.ABANDON_GRACE + 1.0  # "within a couple of seconds"
    assert slow_toys["finished"] == []


@pytest.mark.parametrize("connected", [False, True], ids=["closed", "connected"])
def test_a_rerun_with_other_inputs_cancels_the_old_work(
    slow_toys: dict[str, list[Any]], monkeypatch: pytest.MonkeyPatch, connected: bool
) -> None:
    """Also while the session stays connected (a real tab): its page shows the new texts computing now."""
    monkeypatch.setattr(backend, "session_connected", lambda session: connected)
    at = page(a="dogs run fast", b="puppies play")
    stop_after(at, 2.5)
    at.session_state["text_a"] = "cats sleep"  # what typing and pressing Explain leave behind
    at.session_state["_pl_text_a"] = "cats sleep"  # pages/explain.py SUBMITTED: the text last explained
    at.run()
    assert not at.exception
    assert [c[0] for c in slow_toys["cancelled"]] == ["dogs run fast"]
    assert slow_toys["finished"] == [("cats sleep", "puppies play")]
    assert len(charts(at)) == 1


def test_a_connected_sessions_late_job_is_kept_until_it_opens_another_page(
    slow_toys: dict[str, list[Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stalled tab stays connected: past the grace its job goes on while its page shows it computing;
    once the session opens another page of the app, the job is let go."""
    monkeypatch.setattr(backend, "ABANDON_GRACE", 0.2)
    monkeypatch.setattr(backend, "session_connected", lambda session: True)
    monkeypatch.setitem(globals(), "UNITS", 200)  # 20 s of work: it cannot finish before it is let go
    at = page(a="dogs run fast", b="puppies play")
    stop_after(at, 2.5)
    time.sleep(1.0)  # five graces
    assert slow_toys["cancelled"] == [] and slow_toys["finished"] == []
    at.switch_page("pages/corpus.py").run()
    assert not at.exception
    wait_for(lambda: slow_toys["cancelled"], timeout=10)
    assert [c[0] for c in slow_toys["cancelled"]] == ["dogs run fast"]


def test_a_rerun_with_the_same_inputs_takes_the_job_up_again(
    slow_toys: dict[str, list[Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A view change (or a reconnecting tab) while computing must not start over."""
    monkeypatch.setattr(backend, "ABANDON_GRACE", 10.0)
    at = page(a="dogs run fast", b="puppies play")
    stop_after(at, 2.5)
    at.run()
    assert not at.exception and len(charts(at)) == 1
    assert slow_toys["started"] == [("dogs run fast", "puppies play")] and slow_toys["cancelled"] == []


def test_two_sessions_share_one_job(slow_toys: dict[str, list[Any]]) -> None:
    first, second = page(a="dogs run fast", b="puppies play"), page(a="dogs run fast", b="puppies play")
    threads = [threading.Thread(target=at.run) for at in (first, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert len(charts(first)) == len(charts(second)) == 1
    assert slow_toys["started"] == [("dogs run fast", "puppies play")]


# ----------------------------------------------------------------------------- the registry alone


class FakeBackend:
    def __init__(self) -> None:
        self.submitted = 0
        self.cancelled: list[str] = []

    def submit(self, request: Any) -> str:
        self.submitted += 1
        return f"job-{self.submitted}"

    def status(self, job_id: str) -> JobStatus:
        return JobStatus(job_id, JobState.RUNNING, "m", 3, 10, 1.0, 2.0, False, None)

    def cancel(self, job_id: str) -> None:
        self.cancelled.append(job_id)


def no_tab(session: str) -> bool:
    """No session is connected (what AppTest's sessions are)."""
    return False


def test_registry_cancels_only_unwatched_jobs_after_the_grace(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(backend, "ABANDON_GRACE", 0.2)
    fake = FakeBackend()
    registry = backend.Registry(max_outcomes=2)
    first = registry.attach("k", lambda: fake.submit(None))
    assert registry.attach("k", lambda: fake.submit(None)) == first and fake.submitted == 1
    registry.detach("k", first, False, fake.cancel, no_tab)
    time.sleep(0.4)
    assert fake.cancelled == []  # one watcher is left
    registry.detach("k", first, False, fake.cancel, no_tab)
    wait_for(lambda: fake.cancelled == [first], timeout=2)
    assert registry.attach("k", lambda: fake.submit(None)) == "job-2"  # a cancelled job is not taken up


def test_waiting_twice_for_a_computation_lets_go_of_its_job_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """A page run waits for a slow column twice (for the first map, then briefly for the others) before its
    watcher takes the job up: the job is let go once, so the watcher's job is not cancelled under it (the
    second release used to count below zero and leave the first abandoned-job timer running)."""
    monkeypatch.setattr(backend, "ABANDON_GRACE", 0.2)
    fake = FakeBackend()
    registry = backend.Registry(max_outcomes=2)
    monkeypatch.setattr(backend, "get_backend", Mock(return_value=fake))  # a Mock has the cache's .clear()
    monkeypatch.setattr(backend, "registry", lambda: registry)
    computation = backend.start("m", "a", "b", ExplainOptions())
    backend.wait([computation], lambda _: None, first=True, budget=0.05)
    backend.wait([computation], lambda _: None, budget=0.05)
    watcher = backend.start("m", "a", "b", ExplainOptions())  # the column's watcher, within the grace
    assert watcher.job_id == computation.job_id and fake.submitted == 1
    time.sleep(0.5)
    assert fake.cancelled == []  # watched: never cancelled
    backend.wait([watcher], lambda _: None, budget=0.05)  # the watcher lets go and nobody takes it up
    wait_for(lambda: fake.cancelled == [watcher.job_id], timeout=2)


def test_a_job_a_connected_page_still_shows_outlives_a_late_watcher(monkeypatch: pytest.MonkeyPatch) -> None:
    """A hidden tab's throttled timers can hold a column's watcher back for a minute: while that session is
    connected and its page shows the job computing, the grace starts again instead of cancelling. Once the
    session's page shows other computations, or the session is gone, the job is cancelled as before."""
    monkeypatch.setattr(backend, "ABANDON_GRACE", 0.1)
    fake = FakeBackend()
    registry = backend.Registry(max_outcomes=2)
    connected = {"tab-1"}
    job = registry.attach("k", lambda: fake.submit(None))
    registry.show_computing("tab-1", ["k"])
    registry.detach("k", job, False, fake.cancel, lambda session: session in connected)
    time.sleep(0.5)  # five graces
    assert fake.cancelled == []
    assert registry.attach("k", lambda: fake.submit(None)) == job  # the late watcher takes its job up again
    registry.detach("k", job, False, fake.cancel, lambda session: session in connected)
    registry.show_computing("tab-1", ["other"])  # new texts: this job is shown no more
    wait_for(lambda: fake.cancelled == [job], timeout=2)

    second = registry.attach("k", lambda: fake.submit(None))
    registry.show_computing("tab-1", ["k"])
    registry.show_computing("tab-2", ["k"])  # a session that is not connected counts for nothing
    registry.detach("k", second, False, fake.cancel, lambda session: session in connected)
    time.sleep(0.3)
    assert fake.cancelled == [job]
    connected.clear()  # the tab is closed
    wait_for(lambda: fake.cancelled == [job, second], timeout=2)
    assert registry.shown == {}  # closed sessions are forgotten
    registry.show_computing("tab-3", ["k"])
    registry.show_computing("tab-3", [])
    assert registry.shown == {}


def test_registry_says_which_jobs_are_being_watched() -> None:
    fake = FakeBackend()
    registry = backend.Registry(max_outcomes=2)
    assert not registry.is_watched("k")
    job = registry.attach("k", lambda: fake.submit(None))
    assert registry.is_watched("k")
    registry.detach("k", job, True, fake.cancel, no_tab)
    assert not registry.is_watched("k")


def test_outcome_memory_is_bounded() -> None:
    registry = backend.Registry(max_outcomes=2)
    for key in "abc":
        registry.remember(key, backend.Failure(key))
    assert registry.recall("a") is None and registry.recall("c") == backend.Failure("c")


def test_progress_text() -> None:
    running = JobStatus("j", JobState.RUNNING, "m", 30, 120, 5.0, 15.0, False, None)
    fraction, text = backend.progress_text("MiniLM", running)
    assert fraction == 0.25 and text == "MiniLM: 25 % of 120 tangent passes · about 15 s left"
    assert "waiting" in backend.progress_text("MiniLM", None)[1]
    queued = JobStatus("j", JobState.QUEUED, "m", 0, 0, 0.0, None, False, None)
    assert backend.progress_text("MiniLM", queued) == (0.0, "MiniLM: waiting for a free worker…")


# ----------------------------------------------------------------------------- the HTTP backend


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def http_backend(tmp_path: Path, minilm: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[JobManager]:
    import uvicorn

    from attribution.service.http import create_app

    manager = JobManager(workers=2, cache=ResultCache(tmp_path / "c.sqlite", 8 << 20))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(manager), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for(lambda: server.started, timeout=30)
    monkeypatch.setenv("PAIRLENS_BACKEND_URL", f"http://127.0.0.1:{port}")
    backend.get_backend.clear()
    try:
        yield manager
    finally:
        server.should_exit = True
        thread.join(10)
        manager.shutdown()


def test_page_computes_through_the_http_backend(http_backend: JobManager, monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[str] = []  # the page catches errors of a model load (cost estimate, rates): count the asks too

    def no_local_model(name: str) -> None:
        asked.append(name)
        raise AssertionError("the page must not load models when it has a backend")

    monkeypatch.setattr(backend, "get_model", no_local_model)
    at = AppTest.from_file(APP, default_timeout=300)
    at.query_params["steps"] = "4"
    at.run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    figures = charts(at)
    assert len(figures) == 1 and "[CLS]" in figures[0]["layout"]["yaxis"]["ticktext"]
    assert http_backend.counts()["done"] == 1
    assert isinstance(backend.get_backend(), backend.HttpBackend)
    assert asked == []


def test_unreachable_backend_is_a_message(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAIRLENS_BACKEND_URL", f"http://127.0.0.1:{free_port()}")
    backend.get_backend.clear()
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    assert not at.exception
    assert "cannot be reached" in "\n".join(str(e.value) for e in at.error)


def test_cancel_button_stops_the_work_until_explain_is_pressed(
    slow_toys: dict[str, list[Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    buttons: list[Any] = []

    def cancel_button(slot: Any, name: str, on_cancel: Any) -> None:
        buttons.append(on_cancel)
        slot.button("Cancel", key=f"cancel::{name}")

    monkeypatch.setattr(render, "render_cancel_button", cancel_button)
    at = page(a="dogs run fast", b="puppies play")
    stop_after(at, 2.5)
    assert len(buttons) == 1  # under the progress bar
    # AppTest keeps no elements of a run it stopped: do what the button's callback does, then rerun
    at.session_state["_pl_cancelled"] = {buttons[0].args[0]}
    at.run()
    assert not at.exception
    wait_for(lambda: slow_toys["cancelled"], timeout=5)
    assert slow_toys["finished"] == [] and len(charts(at)) == 0
    assert any("Cancelled" in i.value for i in at.info) and not [b for b in at.button if b.label == "Cancel"]
    assert slow_toys["started"] == [("dogs run fast", "puppies play")]  # not started again
    next(b for b in at.button if b.label == "Explain").click().run()
    assert slow_toys["finished"] == [("dogs run fast", "puppies play")] and len(charts(at)) == 1
