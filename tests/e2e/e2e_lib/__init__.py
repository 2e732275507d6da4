"""Harness for the end-to-end tests: a recording upstream, an Envoy launcher and raw HTTP helpers."""
