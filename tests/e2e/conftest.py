"""Session harness: one recording upstream, one Envoy with a listener per plugin configuration.

Listeners (see LISTENERS) all route to the recording upstream, except `mcp`/`mcp_plain`, which route
to the `mcp_peer` cluster: a port reserved here, where test_mcp_sdk.py starts a real MCP SDK server.
`plain` and `mcp_plain` run without the filter and serve as controls.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from e2e_lib.envoy import REPO_ROOT, WASM_PATH, EnvoyProcess, ListenerSpec, launch_envoy  # noqa: E402
from e2e_lib.gateway import Gateway  # noqa: E402
from e2e_lib.listeners import DEFAULT_BUFFER_LISTENERS, LISTENERS, MCP_LISTENERS  # noqa: E402
from e2e_lib.ports import free_port  # noqa: E402
from e2e_lib.recording_upstream import RecordingUpstream  # noqa: E402


@pytest.fixture(scope="session")
def wasm_file() -> Path:
    """The built filter; a missing file fails (never skips) the tests that need it."""
    wasm = REPO_ROOT / WASM_PATH
    if not wasm.is_file():
        pytest.fail(f"{WASM_PATH} is missing: run `bash scripts/build.sh` first", pytrace=False)
    return wasm


@pytest.fixture(scope="session")
def upstream() -> Iterator[RecordingUpstream]:
    up = RecordingUpstream().start()
    yield up
    up.stop()


@pytest.fixture(scope="session")
def mcp_peer_port() -> int:
    """Port of the `mcp_peer` cluster; the MCP server itself is started by test_mcp_sdk.py."""
    return free_port()


@pytest.fixture(scope="session")
def envoy(
    wasm_file: Path, upstream: RecordingUpstream, mcp_peer_port: int, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[EnvoyProcess]:
    specs = [ListenerSpec(name, cfg) for name, cfg in LISTENERS.items()]
    specs += [ListenerSpec(name, cfg, cluster="mcp_peer") for name, cfg in MCP_LISTENERS.items()]
    specs += [ListenerSpec(name, cfg, buffer_limit=None) for name, cfg in DEFAULT_BUFFER_LISTENERS.items()]
    workdir = tmp_path_factory.mktemp("envoy")
    env = launch_envoy(specs, {"recorder": upstream.port, "mcp_peer": mcp_peer_port}, workdir)
    _SESSION_ENVOYS.append(env)
    yield env
    env.stop()


@pytest.fixture
def gw(envoy: EnvoyProcess, upstream: RecordingUpstream, request: pytest.FixtureRequest) -> Gateway:
    """A client for this test; request paths carry the test name for correlation."""
    return Gateway(envoy, upstream, request.node.name)


_ENVOY_KEY = pytest.StashKey[tuple[EnvoyProcess, int]]()
_SESSION_ENVOYS: list[EnvoyProcess] = []


@pytest.fixture(autouse=True)
def _envoy_log_marker(request: pytest.FixtureRequest) -> None:
    """Remember where Envoy's log stood when the test began, to attach the new lines on failure."""
    if "envoy" in request.fixturenames:
        env: EnvoyProcess = request.getfixturevalue("envoy")
        request.node.stash[_ENVOY_KEY] = (env, env.log_size())


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    report = yield
    if report.failed and _ENVOY_KEY in item.stash:
        env, offset = item.stash[_ENVOY_KEY]
        env.saw_failure = True
        try:
            text = env.log_since(offset)
        except OSError as e:
            text = f"(cannot read {env.log_path}: {e})"
        lines = text.splitlines()
        if len(lines) > 150:
            lines = ["..."] + lines[-150:]
        report.sections.append((f"envoy log during this test ({env.log_path})", "\n".join(lines)))
    return report


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """After failures, end the run with the tail of the session Envoy's log and where the full log is."""
    for env in _SESSION_ENVOYS:
        if env.saw_failure:
            terminalreporter.section(f"envoy log tail ({env.log_path})")
            terminalreporter.write_line(env.log_tail(60))
