"""deploy/: the supervisord program, the systemd unit, the Grafana dashboard and the Prometheus alert
rules agree with the code they run and the metrics it really serves, so none of them can rot."""

from __future__ import annotations

import configparser
import json
import re
from pathlib import Path
from typing import Any

import yaml

from aegis.config.sections import EngineSettings
from aegis.exitcodes import EXIT_AUTH, EXIT_OK, EXIT_USAGE
from tests.metrics_scrape import scrape
from tests.rigs import engine_rig
from tests.test_strategy import Alternating

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
PROMETHEUS_BUILTINS = {"up"}  # series Prometheus itself adds to every target
_METRIC = re.compile(r"\b(aegis_[a-z0-9_]+|up)\b")
_FUNCTIONS_AND_WORDS = {"by", "le", "or", "and", "on"}


def alert_rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load((DEPLOY / "prometheus-alerts.yml").read_text(encoding="utf-8"))
    return [rule for group in doc["groups"] for rule in group["rules"]]


def dashboard_exprs() -> list[str]:
    doc = json.loads((DEPLOY / "grafana-dashboard.json").read_text(encoding="utf-8"))
    panels = [p for p in doc["panels"] if p["type"] != "row"]
    assert panels
    return [t["expr"] for p in panels for t in p["targets"]]


def metric_names(expr: str) -> set[str]:
    without_labels = re.sub(r"\{[^}]*\}", "", expr)  # label values are not metric names
    return {m for m in _METRIC.findall(without_labels) if m not in _FUNCTIONS_AND_WORDS}


async def test_every_metric_the_dashboard_and_the_alerts_use_is_in_a_real_scrape() -> None:
    async with engine_rig(strategy=Alternating()) as rig:
        m = await scrape(rig.ops_url)
    served = m.names() | PROMETHEUS_BUILTINS
    for expr in [r["expr"] for r in alert_rules()] + dashboard_exprs():
        used = metric_names(expr)
        assert used, expr
        assert used <= served, f"{expr}: {sorted(used - served)} not served by /metrics"


def test_the_alert_rules_cover_what_an_operator_must_be_paged_for() -> None:
    rules = alert_rules()
    for rule in rules:
        assert set(rule) >= {"alert", "expr", "labels", "annotations"}, rule
        assert rule["labels"]["severity"] in ("critical", "warning")
        assert rule["annotations"]["summary"]
    by_metric: dict[str, str] = {}
    for rule in rules:
        for name in metric_names(rule["expr"]):
            by_metric.setdefault(name, rule["alert"])
    for needed in (
        "aegis_stream_connections",  # a stream down
        "aegis_reconcile_consecutive_failures",  # reconciliation failing
        "aegis_trading_halted",
        "aegis_rest_rate_limited_total",  # 429s and 418 bans
        "aegis_market_last_candle_age_seconds",  # stale candles
        "aegis_clock_offset_seconds",
        "aegis_listenkey_keepalive_age_seconds",
        "aegis_healthy",
    ):
        assert needed in by_metric, needed
    assert len({r["alert"] for r in rules}) == len(rules)


def test_the_supervisord_program_restarts_only_what_a_restart_can_fix() -> None:
    conf = configparser.RawConfigParser(inline_comment_prefixes=(";",))
    conf.read(DEPLOY / "supervisord.conf", encoding="utf-8")
    program = conf["program:aegis"]
    assert program["command"].split()[1:3] == ["run", "--testnet"]
    assert {int(c) for c in program["exitcodes"].split(",")} == {EXIT_OK, EXIT_USAGE, EXIT_AUTH}
    assert program["autorestart"] == "unexpected"
    assert program["stopsignal"] == "TERM"
    assert int(program["stopwaitsecs"]) > EngineSettings().shutdown_timeout_s
    assert int(program["startretries"]) == 0  # a configuration error is FATAL at once, not retried
    env = program["environment"]
    assert "AEGIS_API_KEY_FILE=" in env and "AEGIS_API_SECRET_FILE=" in env
    assert "AEGIS_API_KEY=" not in env and "AEGIS_API_SECRET=" not in env  # never secrets in the file


def systemd_unit() -> dict[str, list[tuple[str, str]]]:
    sections: dict[str, list[tuple[str, str]]] = {}
    current = ""
    for raw in (DEPLOY / "aegis.service").read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            current = line.strip("[]")
            sections[current] = []
        else:
            key, _, value = line.partition("=")
            sections[current].append((key, value))
    return sections


def test_the_systemd_unit_has_the_same_stop_and_restart_semantics() -> None:
    unit = systemd_unit()
    service = dict(unit["Service"])
    assert service["ExecStart"].split()[1:3] == ["run", "--testnet"]
    assert service["Restart"] == "on-failure"
    assert {int(c) for c in service["RestartPreventExitStatus"].split()} == {EXIT_USAGE, EXIT_AUTH}
    assert service["KillSignal"] == "SIGTERM"
    assert int(service["TimeoutStopSec"]) > EngineSettings().shutdown_timeout_s
    env = [value for key, value in unit["Service"] if key == "Environment"]
    assert any(v.startswith("AEGIS_API_KEY_FILE=") for v in env) and any(v.startswith("AEGIS_API_SECRET_FILE=") for v in env)
    assert not any(v.startswith(("AEGIS_API_KEY=", "AEGIS_API_SECRET=")) for v in env)
    assert "StartLimitBurst" in dict(unit["Unit"])
