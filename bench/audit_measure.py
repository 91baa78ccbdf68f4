"""Measurements for bench/audit.sh, with the standard library only.

  audit_measure.py http BASE_URL USER REQUESTS   table rows: latency of history pages and balances at depth
  audit_measure.py verify BITBURST DATABASE_URL  table cells: verify's seconds, max RSS and verdict
"""

import http.client
import json
import resource
import statistics
import subprocess
import sys
import time
import urllib.parse

WARM_UP = 20


def timed_gets(base, path, count):
    """Median and p99 latency in ms of `count` GETs of `path` on one keep-alive connection."""
    url = urllib.parse.urlsplit(base)
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    samples = []
    for number in range(WARM_UP + count):
        started = time.perf_counter()
        connection.request("GET", path)
        response = connection.getresponse()
        body = response.read()
        elapsed = (time.perf_counter() - started) * 1000
        if response.status != 200:
            raise SystemExit(f"GET {path}: {response.status} {body[:200]!r}")
        if number >= WARM_UP:
            samples.append(elapsed)
    connection.close()
    samples.sort()
    return statistics.median(samples), samples[min(len(samples) - 1, int(len(samples) * 0.99))]


def get_json(base, path):
    url = urllib.parse.urlsplit(base)
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    connection.request("GET", path)
    response = connection.getresponse()
    return json.loads(response.read())


def measure_http(base, user, count):
    history = f"/users/{user}/history"
    deep_page = get_json(base, f"{history}?page=9999")
    cursor = deep_page["next_cursor"]
    if not cursor or deep_page["transactions"][-1]["sequence"] != 11:
        raise SystemExit(f"page 9999 is not where it should be: {deep_page}")
    month = "from=2026-01-01T00:00:00Z&to=2026-01-31T00:00:00Z"
    month_page = get_json(base, f"{history}?{month}&page=4999")
    rows = [
        ("history ?page=1", f"{history}?page=1"),
        ("history ?page=5000", f"{history}?page=5000"),
        ("history ?page=10000", f"{history}?page=10000"),
        ("history ?cursor= (page 10,000)", f"{history}?cursor={cursor}"),
        ("history ?from=&to= (January) page 1", f"{history}?{month}&page=1"),
        ("history ?from=&to= (January) page 5000", f"{history}?{month}&page=5000"),
        ("history ?from=&to= cursor (page 5000)", f"{history}?{month}&cursor={month_page['next_cursor']}"),
        ("balance", f"/users/{user}/balance"),
        ("balance ?at= (after 10 transactions)", f"/users/{user}/balance?at=2026-01-01T00:00:10Z"),
        ("balance ?at= (after 99,990 transactions)", f"/users/{user}/balance?at=2026-01-02T03:46:30Z"),
    ]
    for name, path in rows:
        median, p99 = timed_gets(base, path, count)
        print(f"| `{name}` | {median:.2f} | {p99:.2f} |")


def measure_verify(binary, database_url):
    started = time.perf_counter()
    finished = subprocess.run(
        [binary, "verify", "--json"], env={"DATABASE_URL": database_url}, capture_output=True, text=True
    )
    seconds = time.perf_counter() - started
    peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    if finished.returncode == 2:
        raise SystemExit(f"verify could not read the ledger: {finished.stderr}")
    summary = json.loads(finished.stdout)
    verdict = "clean" if summary["clean"] else f"{len(summary['findings'])} findings"
    print(f"{seconds:.1f} | {peak_mib:.0f} | {verdict} ({summary['transactions']} transactions read)")


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "http":
        measure_http(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    elif len(sys.argv) == 4 and sys.argv[1] == "verify":
        measure_verify(sys.argv[2], sys.argv[3])
    else:
        raise SystemExit(__doc__)
