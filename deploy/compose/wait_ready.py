"""Wait until a URL answers 200 (Envoy's admin /ready in docker-compose.yaml), at most 60 s."""

import sys
import time
import urllib.request

url = sys.argv[1]
deadline = time.monotonic() + 60
while True:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            if response.status == 200:
                sys.exit(0)
    except OSError:
        pass
    if time.monotonic() > deadline:
        print(f"wait_ready: {url} not ready after 60 s", file=sys.stderr)
        sys.exit(1)
    time.sleep(0.5)
