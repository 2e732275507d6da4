"""Shared helpers for the deploy/ checks: the filter's own configuration parser, run natively."""

import pathlib
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def parse_configs():
    """A function: JSON documents (one line each) -> the parser's verdicts (True = accepted).

    Runs examples/check_config.rs, which calls the filter's Config::parse on each line."""
    subprocess.run(["cargo", "build", "--quiet", "--locked", "--example", "check_config"],
                   cwd=ROOT, check=True)
    binary = ROOT / "target/debug/examples/check_config"

    def run(documents):
        for document in documents:
            assert "\n" not in document and "\r" not in document, document
        out = subprocess.run([str(binary)], input="".join(d + "\n" for d in documents),
                             capture_output=True, text=True, check=True, timeout=60).stdout
        lines = out.splitlines()
        assert len(lines) == len(documents), (len(lines), len(documents))
        for line in lines:
            assert line == "accept" or line.startswith("reject "), line
        return [line == "accept" for line in lines]

    return run
