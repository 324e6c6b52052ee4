"""End-to-end fixtures: one real stack (sandbox, SMTP sink, bridge web and worker) per tracker.

The stack is session-scoped and parametrized by ``BRIDGE_TRACKER``: pytest runs every e2e test
against GitLab, stops that stack, then runs them all against Jira. Tests keep to their own
tracking IDs (and clear the faults they set), so they can share it.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator

import pytest

from tests.e2e.harness import Stack


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, object, object]:
    report = yield
    setattr(item, f"e2e_report_{call.when}", report)
    return report


@pytest.fixture(scope="session", params=["gitlab", "jira"])
def stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tracker = str(request.param)
    running = Stack(tmp_path_factory.mktemp(f"e2e-{tracker}"), tracker=tracker).start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(autouse=True)
def _process_logs_on_failure(request: pytest.FixtureRequest) -> Iterator[None]:
    """When a test fails, print the tails of the processes' logs (shown with the failure)."""
    yield
    failed = any(
        getattr(getattr(request.node, f"e2e_report_{when}", None), "failed", False) for when in ("setup", "call")
    )
    running = request.node.funcargs.get("stack")
    if failed and isinstance(running, Stack):
        print(f"\n##### process logs of the {running.tracker} stack ({running.root}) #####")
        print(running.tails(60))
        print("##### mail received #####")
        for mail in running.mail.messages():
            print(f"  {mail!r}")
