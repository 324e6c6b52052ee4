"""Load generation: signed report bodies, and wrk runs at a constant rate or closed-loop.

wrk (C, epoll) does the sending; ``bench/rate.lua`` turns it into a wrk2-style constant-rate
generator and reports latency percentiles, status codes and late slots as one JSON line. The
CPU wrk used is read from the children's rusage, so every result says what the load generator
itself cost.
"""

from __future__ import annotations

import json
import math
import resource
import shutil
import subprocess
import threading
import time
import uuid
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import requests

from bridge.web.signatures import sign
from harness.stack import SIGNING_SECRET

LUA = Path(__file__).resolve().parent / "rate.lua"

TITLES = [
    ("Chat-widget indlæses ikke", "Siden viser kun en spinner.", "Ingen af vores kunder kan skrive til os", "Kritisk"),
    ("Login fails after password reset", "The reset link works, then login says invalid password.", None, "High"),
    (
        "Forkert moms på fakturaen",
        "Fakturaen for oktober har 20 % moms i stedet for 25 %.",
        "Bogholderiet venter",
        None,
    ),
    ("Export to CSV is slow", "Exporting 2,000 rows takes three minutes.", "Annoying", "Low"),
    ("Betaling virker ikke", "Kunder kan ikke betale med MobilePay i checkout.", "Vi mister salg", "Haster"),
]
PRODUCTS = ["widget", "billing", "portal", None]


def report_event(n: int, *, email: str | None = None, run: str = "") -> dict[str, Any]:
    title, description, impact, priority = TITLES[n % len(TITLES)]
    report: dict[str, Any] = {"title": f"{title} #{n}", "description": description, "impact": impact}
    if priority:
        report["priority"] = priority
    product = PRODUCTS[n % len(PRODUCTS)]
    if product:
        report["product"] = product
    report["environment"] = {"browser": "Firefox 140", "os": "Windows 11", "app_version": "5.12.0"}
    return {
        "event_id": f"evt_bench_{run}{n}_{uuid.uuid4().hex[:8]}",
        "type": "report.created",
        "conversation_id": f"conv_{n}",
        "reporter": {
            # One address per report: a per-reporter hourly limit must not turn a benchmark into 429s
            # (an outage is many customers reporting once, not one customer reporting thousands of times).
            "email": email or f"reporter{n}.{run or 'x'}@kunde{n % 7}.example",
            "name": f"Reporter {n % 200}",
            "locale": "da" if n % 2 else "en",
            "organization": f"Kunde {n % 7} A/S",
        },
        "report": report,
    }


def signed(body: bytes, *, at: int | None = None, secret: str = SIGNING_SECRET) -> str:
    t = int(time.time()) if at is None else at
    return f"t={t},v1={sign(secret, t, body)}"


def write_bodies(path: Path, count: int, *, start: int = 0, sign_them: bool = True) -> Path:
    """``count`` distinct signed report requests, one a line: ``<signature>\\t<body>``."""
    at = int(time.time())
    run = uuid.uuid4().hex[:6]
    with path.open("w") as out:
        for n in range(start, start + count):
            body = json.dumps(report_event(n, run=run), ensure_ascii=False, separators=(",", ":")).encode()
            sig = signed(body, at=at) if sign_them else ""
            out.write(sig + "\t" + body.decode() + "\n")
    return path


@dataclass
class LoadResult:
    target_rate: float  # 0 = closed loop
    duration_s: float
    connections: int
    requests: int
    achieved_rate: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    p999_ms: float
    max_ms: float
    codes: dict[str, int]
    errors: dict[str, int]
    late: int
    late_fraction: float
    loadgen_cpu_pct: float
    """CPU wrk used, in percent of one core, over the run."""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ok_responses(self) -> int:
        return sum(v for k, v in self.codes.items() if k.startswith("2"))

    @property
    def failed(self) -> int:
        bad = sum(v for k, v in self.codes.items() if not k.startswith("2"))
        return bad + self.errors.get("connect", 0) + self.errors.get("read", 0) + self.errors.get("timeout", 0)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def wrk_path() -> str:
    path = shutil.which("wrk")
    if path is None:
        raise SystemExit("wrk is not installed: `apt-get install -y wrk` (make bench does it)")
    return path


def connections_for(rate: float) -> int:
    """Enough connections that one is free at every slot (in flight ~ rate x latency, x margin)."""
    if rate <= 0:
        return 16
    return int(min(256, max(8, math.ceil(rate * 0.06))))


def run_wrk(
    url: str,
    bodies: Path,
    *,
    rate: float,
    duration: float,
    threads: int = 2,
    connections: int | None = None,
    path: str = "/webhooks/chatbot",
) -> LoadResult:
    conns = connections or connections_for(rate)
    conns = max(conns, threads)
    argv = [
        wrk_path(),
        "-t",
        str(threads),
        "-c",
        str(conns),
        "-d",
        f"{duration:g}s",
        "--latency",
        "--timeout",
        "30s",
        "-s",
        str(LUA),
        url,
        "--",
        str(bodies),
        f"{rate:g}",
        str(threads),
        path,
    ]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=duration + 120)  # noqa: S603
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("BENCH_JSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no result (exit {proc.returncode}): {proc.stdout[-800:]} {proc.stderr[-800:]}")
    data = json.loads(line.removeprefix("BENCH_JSON "))
    seconds = data["duration_us"] / 1e6
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    lat = data["latency_us"]
    sent = max(1, int(data["sent"]))
    return LoadResult(
        target_rate=rate,
        duration_s=round(seconds, 2),
        connections=conns,
        requests=int(data["requests"]),
        achieved_rate=round(data["requests"] / seconds, 1) if seconds else 0.0,
        p50_ms=lat["p50"] / 1000,
        p90_ms=lat["p90"] / 1000,
        p99_ms=lat["p99"] / 1000,
        p999_ms=lat["p99.9"] / 1000,
        max_ms=lat["max"] / 1000,
        codes={str(k): int(v) for k, v in data["codes"].items()},
        errors={k: int(v) for k, v in data["errors"].items()},
        late=int(data["late"]),
        late_fraction=round(int(data["late"]) / sent, 4),
        loadgen_cpu_pct=round(100 * cpu / seconds, 1) if seconds else 0.0,
    )


def bodies_for(directory: Path, name: str, rate: float, duration: float, *, minimum: int = 2000) -> Path:
    """A fresh body file big enough that no body repeats in a run of ``rate`` x ``duration``."""
    count = max(minimum, int(rate * duration * 1.3) + 500)
    return write_bodies(directory / f"{name}.bodies", count)


def send_backlog(url: str, bodies: Path, *, threads: int = 8) -> dict[str, Any]:
    """POST every line of ``bodies`` exactly once (a backlog of known size), ``threads`` at a time.

    wrk cannot stop after a number of requests, so this is plain ``requests`` in threads: its own
    speed does not matter here, only that every report is accepted once.
    """
    lines = bodies.read_text().splitlines()
    codes: Counter[int] = Counter()
    lock = threading.Lock()

    def post(chunk: list[str]) -> None:
        session = requests.Session()
        for line in chunk:
            sig, body = line.split("\t", 1)
            headers = {"Content-Type": "application/json", "X-Smarttalk-Signature": sig}
            for _ in range(5):  # a refused connection or a 503 is retried; the event id makes it safe
                try:
                    status = session.post(url, data=body.encode(), headers=headers, timeout=60).status_code
                except requests.RequestException:
                    status = 0
                if status not in (0, 503):
                    break
                time.sleep(0.5)
            with lock:
                codes[status] += 1
        session.close()

    started = time.perf_counter()
    workers = [threading.Thread(target=post, args=(lines[i::threads],)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    elapsed = time.perf_counter() - started
    return {"codes": {str(k): v for k, v in codes.items()}, "seconds": elapsed, "rate": len(lines) / elapsed}
