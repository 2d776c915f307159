"""Pure logic of the report: parsing wrk and Ansible output, ratios, the printed table."""

from __future__ import annotations

import re
from itertools import pairwise
from typing import Any

from remote.stats import ratio

_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}
_DURATION = re.compile(r"^([0-9.]+)(us|ms|s|m|h)$")


def duration_ms(token: str) -> float:
    """A wrk duration ("812.00us", "1.20ms", "2.01s", "1.00m") in milliseconds."""
    match = _DURATION.match(token.strip())
    if not match:
        raise ValueError(f"not a wrk duration: {token!r}")
    return float(match.group(1)) * _UNITS_MS[match.group(2)]


def parse_wrk(text: str) -> dict[str, Any]:
    """The figures of `wrk --latency` output: requests/s, latency percentiles (ms), errors."""
    rps = re.search(r"^Requests/sec:\s+([0-9.]+)", text, re.MULTILINE)
    if not rps:
        raise ValueError(f"no Requests/sec line in wrk output:\n{text[-1000:]}")
    latency = {
        f"p{pct}": duration_ms(value)
        for pct, value in re.findall(r"^\s+(50|75|90|99)%\s+(\S+)\s*$", text, re.MULTILINE)
    }
    total = re.search(r"^\s+(\d+) requests in ([0-9.]+\w+),", text, re.MULTILINE)
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    sockets = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text
    )
    return {
        "requests_per_s": float(rps.group(1)),
        "latency_ms": latency,
        "requests": int(total.group(1)) if total else None,
        "duration_s": duration_ms(total.group(2)) / 1000 if total else None,
        "non_2xx_3xx": int(non2xx.group(1)) if non2xx else 0,
        "socket_errors": sum(int(n) for n in sockets.groups()) if sockets else 0,
    }


def parse_recap(text: str) -> dict[str, dict[str, int]]:
    """Per host, the counters of an ansible-playbook PLAY RECAP."""
    recap: dict[str, dict[str, int]] = {}
    for host, counters in re.findall(r"^(\S+)\s+:\s+(ok=\d+.*)$", text, re.MULTILINE):
        recap[host] = {key: int(value) for key, value in re.findall(r"(\w+)=(\d+)", counters)}
    return recap


def play_seconds(events: list[tuple[float, str]], end: float) -> dict[str, float]:
    """Seconds per play from (time, "PLAY [name]") events of one ansible-playbook run, ended at
    `end`. A play run in batches (serial) prints its header once per batch: the batches add up."""
    out: dict[str, float] = {}
    for (at, name), (next_at, _) in pairwise([*events, (end, "")]):
        out[name] = out.get(name, 0.0) + max(0.0, next_at - at)
    return out


def play_header(line: str) -> str | None:
    """The play's name from an ansible-playbook "PLAY [name] ****" line, else None."""
    match = re.match(r"^PLAY \[(.*)\] \*+\s*$", line)
    return match.group(1) if match else None


def cpu_busy_fraction(before: str, after: str) -> float | None:
    """Share of CPU time not idle (idle + iowait) between two readings of /proc/stat."""

    def totals(text: str) -> tuple[int, int]:
        for line in text.splitlines():
            fields = line.split()
            if fields and fields[0] == "cpu":
                ticks = [int(n) for n in fields[1:9]]  # user..steal; guest is inside user
                return sum(ticks), ticks[3] + ticks[4]
        raise ValueError("no aggregate cpu line in /proc/stat")

    total_a, idle_a = totals(before)
    total_b, idle_b = totals(after)
    elapsed = total_b - total_a
    return None if elapsed <= 0 else 1 - (idle_b - idle_a) / elapsed


def parse_phases(text: str) -> dict[str, int]:
    """tests/results/phases.txt (written by tests/cluster.sh): phase name -> seconds."""
    phases: dict[str, int] = {}
    for line in text.splitlines():
        match = re.match(r"^(.*\S)\s+(\d+)s\s*$", line)
        if match:
            phases[match.group(1)] = int(match.group(2))
    return phases


def cold_provision_seconds(phases: dict[str, int]) -> int | None:
    for name, seconds in phases.items():
        if name.startswith("provision: first run"):
            return seconds
    return None


def _get(data: dict[str, Any], *path: str) -> Any:
    for key in path:
        if not isinstance(data, dict) or key not in data:
            return None
        data = data[key]
    return data


RATIOS: list[tuple[str, tuple[str, ...], tuple[str, ...]]] = [
    (
        "celery drain: kit workers / hand-started worker",
        ("celery", "kit", "drain", "steady_rate"),
        ("celery", "hand", "drain", "steady_rate"),
    ),
    (
        "celery drain: kit workers / broker ceiling (consume)",
        ("celery", "kit", "drain", "steady_rate"),
        ("broker_ceiling", "consume", "steady_rate"),
    ),
    (
        "celery publish: send_task / broker ceiling (publish)",
        ("celery", "kit", "publish", "rate"),
        ("broker_ceiling", "publish", "rate"),
    ),
    (
        "http req/s: POST /api/jobs (enqueue) / GET /ping (trivial)",
        ("http", "post_jobs", "requests_per_s"),
        ("http", "ping", "requests_per_s"),
    ),
    (
        "http p50: POST /api/jobs / GET /ping",
        ("http", "post_jobs", "latency_ms", "p50"),
        ("http", "ping", "latency_ms", "p50"),
    ),
    (
        "provision warm: stock linear strategy / kit default (Mitogen)",
        ("provision", "warm_stock_strategy", "seconds"),
        ("provision", "warm_default", "seconds"),
    ),
    (
        "provision: warm (kit default) / cold first run",
        ("provision", "warm_default", "seconds"),
        ("provision", "cold_seconds"),
    ),
    (
        "provision: code-only release (deploy.yml) / cold first run",
        ("provision", "code_release", "release", "seconds"),
        ("provision", "cold_seconds"),
    ),
    (
        "provision warm: twice the hosts / default cluster",
        ("scale", "warm_doubled", "seconds"),
        ("scale", "warm_default", "seconds"),
    ),
    (
        "sweep, short tasks: fastest hand worker / kit workers",
        ("sweep", "short", "fastest", "rate"),
        ("celery", "kit", "drain", "steady_rate"),
    ),
]


def compute_ratios(phases: dict[str, Any]) -> list[dict[str, Any]]:
    """Every ratio whose two figures were measured in this run (None if one is missing)."""
    out = []
    for name, num_path, den_path in RATIOS:
        numerator = _get(phases, *num_path)
        denominator = _get(phases, *den_path)
        out.append(
            {
                "name": name,
                "numerator": numerator,
                "denominator": denominator,
                "value": ratio(numerator, denominator),
                "of": [".".join(num_path), ".".join(den_path)],
            }
        )
    return out


def fmt(value: Any, unit: str = "", digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}{unit}"
    return f"{value}{unit}"


def _phase_status(phase: Any) -> str | None:
    if phase is None:
        return None
    if "skipped" in phase:
        return f"skipped: {phase['skipped']}"
    if "error" in phase:
        return f"ERROR: {phase['error']}"
    return None


def table_rows(phases: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(section, figure, value) rows of the printed table."""
    rows: list[tuple[str, str, str]] = []

    def add(section: str, label: str, value: str) -> None:
        rows.append((section, label, value))

    def ran(key: str, section: str) -> dict[str, Any] | None:
        """The phase's figures if it ran; else None, after adding its skipped/error row."""
        phase = phases.get(key)
        status = _phase_status(phase)
        if status:
            add(section, "", status)
            return None
        return phase

    ceiling = ran("broker_ceiling", "broker ceiling")
    if ceiling is not None:
        setup = f"{ceiling['queue_type']} queue, {_get(ceiling, 'consume', 'consumers')} consumers"
        add("broker ceiling", f"raw AMQP, {setup}", "")
        add(
            "",
            "  messages/s in (persistent, publisher confirms)",
            fmt(_get(ceiling, "publish", "rate")),
        )
        add(
            "",
            "  messages/s out (steady; manual ack, prefetch 1)",
            fmt(_get(ceiling, "consume", "steady_rate")),
        )

    celery = ran("celery", "celery no-op")
    if celery is not None:
        manager = (celery.get("kit") or {}).get("process_manager") or "supervisor"
        for label, key in ((f"kit workers ({manager})", "kit"), ("hand-started worker", "hand")):
            part = celery.get(key) or {}
            if "error" in part:
                add("celery no-op", label, f"ERROR: {part['error']}")
                continue
            drain = part.get("drain", {})
            add(
                "celery no-op",
                f"{label}: tasks/s in (send_task)",
                fmt(_get(part, "publish", "rate")),
            )
            add("", f"{label}: tasks/s out (steady)", fmt(drain.get("steady_rate")))
            add(
                "",
                f"{label}: tasks done / sent",
                f"{drain.get('done')}/{_get(part, 'publish', 'sent')}",
            )
            add("", f"{label}: drain span", fmt(drain.get("span_seconds"), " s"))

    http = ran("http", "http (wrk)")
    if http is not None:
        for label, key in (("POST /api/jobs", "post_jobs"), ("GET /ping", "ping")):
            part = http[key]
            add("http (wrk)", f"{label}: requests/s", fmt(part["requests_per_s"]))
            add("", f"{label}: p50 / p99", _pair(part["latency_ms"], "p50", "p99"))
            errors = part["non_2xx_3xx"] + part["socket_errors"]
            add("", f"{label}: errors (non-2xx/3xx + socket)", str(errors))

    e2e = ran("e2e_latency", "end-to-end")
    if e2e is not None:
        lat = e2e["latency_ms"]
        add("end-to-end", "POST -> SUCCESS p50 / p95 / p99", _triple(lat))
        add("", "jobs ok / sent", f"{e2e['succeeded']}/{e2e['sent']}")

    provision = phases.get("provision")
    status = _phase_status(provision) if provision is not None else None
    if status:
        add("provisioning", "", status)
    if provision:
        add("provisioning", "cold first run (phases.txt)", fmt(provision.get("cold_seconds"), " s"))
        for label, key in (
            ("warm, kit default (Mitogen)", "warm_default"),
            ("warm, stock linear strategy (pipelining)", "warm_stock_strategy"),
        ):
            if key in provision:
                add("", label, fmt(_get(provision, key, "seconds"), " s"))
        release = provision.get("code_release")
        if release:
            add(
                "",
                f"code-only release, deploy.yml (+{release['added_package']})",
                fmt(_get(release, "release", "seconds"), " s"),
            )
            sent = _get(release, "release", "requests_sent")
            failed = _get(release, "release", "requests_failed")
            add("", "  GET /healthz during it: failed / sent", f"{failed}/{sent}")
            add(
                "",
                "  deploy.yml back to the inventory's release",
                fmt(_get(release, "back", "seconds"), " s"),
            )

    sweep = ran("sweep", "tuning sweep")
    for load, part in (sweep or {}).items():
        section = f"sweep, {load} tasks"
        hosts = ", ".join(part.get("worker_hosts", []))
        what = f"{part['tasks_per_point']} tasks/point" + (
            f", sleeps {part['sleep_pattern']} s" if part.get("sleep_pattern") else ", no-ops"
        )
        add(section, f"{what}; hand workers on {hosts}", "")
        for point in part["points"]:
            label = f"  concurrency {point['concurrency']}, prefetch {point['prefetch']}: tasks/s"
            add("", label, fmt(point.get("rate")) if "error" not in point else "ERROR")
        fastest = part.get("fastest") or {}
        add(
            "",
            "  fastest" + (" (partial sweep)" if part.get("partial") else ""),
            f"concurrency {fastest.get('concurrency')}, prefetch {fastest.get('prefetch')}",
        )

    scale = ran("scale", "provisioning scale")
    if scale is not None:
        for key, label in (
            ("warm_default", f"warm site.yml, {scale['hosts_default']} hosts"),
            (
                "scale_out_first_run",
                f"first run with {scale['hosts_doubled']} hosts (new ones cold)",
            ),
            ("warm_doubled", f"warm site.yml, {scale['hosts_doubled']} hosts"),
        ):
            run = scale.get(key) or {}
            add("provisioning scale" if key == "warm_default" else "", label, "")
            add("", "  seconds", fmt(run.get("seconds"), " s"))
            if "serial_seconds" in run:
                add(
                    "",
                    "  of which in batched plays (serial: brokers, web)",
                    fmt(run["serial_seconds"], " s"),
                )
            if run.get("cpu_busy") is not None:
                add("", "  this machine's CPUs busy", f"{run['cpu_busy']:.0%}")

    prof = ran("profile", "gunicorn profile")
    if prof is not None:
        add(
            "gunicorn profile",
            f"py-spy on {prof['host']} under POST /api/jobs load: {prof['samples']} samples "
            f"of request threads in {prof.get('within') or 'any code'} (waits included)",
            "",
        )
        for item in prof["by_package"][:6]:
            add("", f"  innermost frame in {item['name']}", f"{item['share']:.0%}")
        for item in prof["self"][:6]:
            add("", f"  innermost frame: {item['name']}"[:100], f"{item['share']:.0%}")

    wprof = ran("worker_profile", "worker profile")
    if wprof is not None:
        add(
            "worker profile",
            f"py-spy and /proc on {wprof['host']}'s kit workers alone, draining a full queue "
            f"for {wprof['seconds']} s",
            "",
        )
        add(
            "",
            "  tasks done in the window" + (" (queue ran dry)" if wprof["queue_ran_dry"] else ""),
            f"{wprof['tasks_in_window']} ({fmt(wprof['tasks_per_s'])}/s)",
        )
        for key, label in (("main", "main process"), ("pool", "pool children")):
            part = wprof[key]
            active = fmt(part["pyspy_active_threads"], "", 2)
            add("", f"  {label}: cores busy (kernel)", fmt(part["cores_busy"], "", 2))
            add("", f"  {label}: CPU per task", fmt(part["cpu_ms_per_task"], " ms", 2))
            add("", f"  {label}: threads py-spy saw not idle", active)
            for item in part["by_package"][:5]:
                add("", f"    not idle in {item['name']}", f"{item['share']:.0%}")
            for item in part["self"][:4]:
                add("", f"    {item['name']}"[:100], f"{item['share']:.0%}")
        machine = wprof.get("machine") or {}
        if machine.get("cpu_busy") is not None:
            add("", "  this machine's CPUs busy (all containers)", f"{machine['cpu_busy']:.0%}")
        for name, used in (machine.get("containers") or {}).items():
            add(
                "",
                f"  container {name}: cores busy, CPU per task",
                f"{fmt(used['cores_busy'], '', 2)}, {fmt(used['cpu_ms_per_task'], ' ms', 2)}",
            )
    return rows


def _pair(latency: dict[str, float], a: str, b: str) -> str:
    return f"{fmt(latency.get(a), ' ms', 2)} / {fmt(latency.get(b), ' ms', 2)}"


def _triple(latency: dict[str, float]) -> str:
    return " / ".join(fmt(latency.get(p), " ms", 1) for p in ("p50", "p95", "p99"))


def format_table(rows: list[tuple[str, str, str]], ratios: list[dict[str, Any]]) -> str:
    width_a = max([len(r[0]) for r in rows] + [8])
    width_b = max([len(r[1]) for r in rows] + [len(r["name"]) - width_a - 2 for r in ratios] + [8])
    lines = [f"{'':{width_a}}  {'figure':{width_b}}  value", "-" * (width_a + width_b + 20)]
    previous = ""
    for section, label, value in rows:
        shown_section = "" if section == previous else section
        previous = section or previous
        lines.append(f"{shown_section:{width_a}}  {label:{width_b}}  {value}".rstrip())
    lines += ["", "ratios (both figures from this run)", "-" * (width_a + width_b + 20)]
    for item in ratios:
        value = f"{item['value']:.3f}" if item["value"] is not None else "- (not measured)"
        lines.append(f"{item['name']:{width_a + width_b + 2}}  {value}")
    return "\n".join(lines)
