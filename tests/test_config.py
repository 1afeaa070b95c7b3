"""Configuration: precedence, secrets, validation errors as one line naming the field, dumps."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from aegis.config import (
    LIVE,
    MASK,
    TESTNET,
    ConfigError,
    Endpoints,
    Settings,
    load_settings,
    masked_dump,
)

REPO_SETTINGS = Path(__file__).resolve().parent.parent / "settings.toml"
SECRET = "sEcReT-0123456789-abcdef"
KEY = "kEy-9876543210-fedcba"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No AEGIS_* from the caller's shell, and no ./settings.toml unless a test writes one."""
    import os

    for name in list(os.environ):
        if name.upper().startswith("AEGIS_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def error_of(config: Path | None = None, overrides: dict[str, Any] | None = None) -> str:
    with pytest.raises(ConfigError) as info:
        load_settings(config, overrides or {})
    message = str(info.value)
    assert "\n" not in message
    return message


# --------------------------------------------------------------------------- sources


def test_defaults_without_any_file() -> None:
    settings = load_settings(None, {})
    assert settings.profile == "sim"
    assert settings.symbols == ["BTCUSDT", "ETHUSDT"]
    assert settings.ops.host == "127.0.0.1" and settings.ops.port == 8787
    assert settings.api_key is None and settings.api_secret is None
    assert settings.embedded_sim


def test_repo_settings_toml_is_valid_and_equals_the_defaults() -> None:
    assert load_settings(REPO_SETTINGS, {}) == Settings()


def test_repo_settings_toml_documents_every_setting() -> None:
    text = REPO_SETTINGS.read_text(encoding="utf-8")
    sections: dict[str, str] = {}
    current = ""
    for line in text.splitlines():
        header = re.fullmatch(r"\[(\w+)\]", line.strip())
        if header:
            current = header.group(1)
        else:
            sections[current] = sections.get(current, "") + line + "\n"

    def documented(section: str, key: str) -> bool:
        return re.search(rf"^#? ?{key} = ", sections.get(section, ""), re.MULTILINE) is not None

    for name, field in Settings.model_fields.items():
        default = field.get_default(call_default_factory=True)
        if isinstance(default, BaseModel):
            for sub, subfield in type(default).model_fields.items():
                assert documented(name, subfield.alias or sub), f"[{name}] {sub} missing from settings.toml"
        else:
            assert documented("", name), f"{name} missing from settings.toml"


def test_default_settings_toml_in_cwd_is_read(tmp_path: Path) -> None:
    write(tmp_path / "settings.toml", "[ops]\nport = 9001\n")
    assert load_settings(None, {}).ops.port == 9001


def test_aegis_config_env_names_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path / "settings.toml", "[ops]\nport = 9001\n")
    other = write(tmp_path / "other.toml", "[ops]\nport = 9002\n")
    monkeypatch.setenv("AEGIS_CONFIG", str(other))
    assert load_settings(None, {}).ops.port == 9002
    explicit = write(tmp_path / "explicit.toml", "[ops]\nport = 9003\n")
    assert load_settings(explicit, {}).ops.port == 9003  # --config beats AEGIS_CONFIG


def test_missing_explicit_config_file_is_an_error(tmp_path: Path) -> None:
    assert "no such file" in error_of(tmp_path / "nope.toml")


def test_precedence_toml_then_env_then_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = write(tmp_path / "s.toml", '[ops]\nhost = "localhost"\nport = 1111\n[sim]\nspeed = 2.0\n')
    assert load_settings(config, {}).ops.port == 1111
    monkeypatch.setenv("AEGIS_OPS__PORT", "2222")
    assert load_settings(config, {}).ops.port == 2222
    settings = load_settings(config, {"ops": {"port": 3333}})
    assert settings.ops.port == 3333
    # Deep merge: one flag in a section does not reset the rest of it.
    assert settings.ops.host == "localhost"
    assert settings.sim.speed == 2.0


def test_nested_env_with_double_underscore(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AEGIS_PROFILE", "SIM")
    monkeypatch.setenv("AEGIS_OPS__PORT", "0")
    monkeypatch.setenv("AEGIS_SIM__SPEED", "60")
    monkeypatch.setenv("AEGIS_LOGGING__JSON", "true")
    monkeypatch.setenv("AEGIS_LOGGING__LEVEL", "debug")
    monkeypatch.setenv("AEGIS_ENGINE__SHUTDOWN_TIMEOUT_S", "3.5")
    settings = load_settings(None, {})
    assert settings.ops.port == 0
    assert settings.sim.speed == 60.0
    assert settings.logging.json_ is True and settings.logging.level == "DEBUG"
    assert settings.engine.shutdown_timeout_s == 3.5


@pytest.mark.parametrize("raw", ["solusdt, xrpusdt", '["solusdt", "xrpusdt"]'])
def test_symbols_from_env_as_csv_or_json(monkeypatch: pytest.MonkeyPatch, raw: str) -> None:
    monkeypatch.setenv("AEGIS_SYMBOLS", raw)
    assert load_settings(None, {}).symbols == ["SOLUSDT", "XRPUSDT"]


def test_symbols_are_upper_cased_from_toml(tmp_path: Path) -> None:
    config = write(tmp_path / "s.toml", 'symbols = ["btcusdt"]\n')
    assert load_settings(config, {}).symbols == ["BTCUSDT"]


# --------------------------------------------------------------------------- secrets


def test_secrets_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AEGIS_API_KEY", KEY)
    monkeypatch.setenv("AEGIS_API_SECRET", SECRET)
    settings = load_settings(None, {})
    assert settings.api_key is not None and settings.api_key.get_secret_value() == KEY
    assert settings.api_secret is not None and settings.api_secret.get_secret_value() == SECRET
    assert SECRET not in repr(settings) and SECRET not in str(settings)
    assert KEY not in repr(settings)
    creds = settings.credentials()
    assert creds.api_secret.get_secret_value() == SECRET


def test_secrets_from_files_are_stripped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AEGIS_API_KEY_FILE", str(write(tmp_path / "key", f"  {KEY}\n")))
    monkeypatch.setenv("AEGIS_API_SECRET_FILE", str(write(tmp_path / "secret", f"{SECRET}\n\n")))
    settings = load_settings(None, {"profile": "testnet"})
    assert settings.api_key is not None and settings.api_key.get_secret_value() == KEY
    assert settings.api_secret is not None and settings.api_secret.get_secret_value() == SECRET


def test_secret_in_env_and_file_is_ambiguous(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AEGIS_API_SECRET", SECRET)
    monkeypatch.setenv("AEGIS_API_SECRET_FILE", str(write(tmp_path / "secret", SECRET)))
    message = error_of()
    assert message.startswith("api_secret:") and SECRET not in message


@pytest.mark.parametrize("content", [None, "  \n"], ids=["missing", "empty"])
def test_unusable_secret_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, content: str | None) -> None:
    path = tmp_path / "secret"
    if content is not None:
        write(path, content)
    monkeypatch.setenv("AEGIS_API_SECRET_FILE", str(path))
    assert error_of().startswith("api_secret:")


@pytest.mark.parametrize("field", ["api_key", "api_secret"])
def test_secret_in_settings_toml_is_rejected(tmp_path: Path, field: str) -> None:
    config = write(tmp_path / "s.toml", f'{field} = "{SECRET}"\n')
    message = error_of(config)
    assert message.startswith(f"{field}:")
    assert f"AEGIS_{field.upper()}" in message
    assert SECRET not in message


def test_testnet_and_live_need_credentials() -> None:
    message = error_of(None, {"profile": "testnet"})
    assert "api_key" in message and "AEGIS_API_KEY" in message


def test_sim_uses_the_demo_account_without_keys() -> None:
    creds = load_settings(None, {}).credentials()
    assert creds.api_key.get_secret_value() == "aegis-demo-key"
    assert creds.api_secret.get_secret_value() == "aegis-demo-secret"


# --------------------------------------------------------------------------- live safety


def test_live_needs_allow_live(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AEGIS_API_KEY", KEY)
    monkeypatch.setenv("AEGIS_API_SECRET", SECRET)
    assert error_of(None, {"profile": "live"}).startswith("allow_live:")


def test_live_with_allow_live_in_toml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AEGIS_API_KEY", KEY)
    monkeypatch.setenv("AEGIS_API_SECRET", SECRET)
    config = write(tmp_path / "s.toml", "allow_live = true\n")
    settings = load_settings(config, {"profile": "live"})
    assert settings.endpoint() == LIVE


# --------------------------------------------------------------------------- bad values

BAD_VALUES: list[tuple[str, str, str]] = [
    # (id, settings.toml content, expected start of the message)
    ("wrong-type", '[ops]\nport = "abc"\n', "ops.port: "),
    ("unknown-profile", 'profile = "paper"\n', "profile: "),
    ("negative-interval", "[engine]\nshutdown_timeout_s = -1\n", "engine.shutdown_timeout_s: "),
    ("zero-interval", "[userstream]\nsilence_threshold_s = 0\n", "userstream.silence_threshold_s: "),
    ("unknown-key", "[ops]\nprot = 1\n", "ops.prot: unknown setting"),
    ("unknown-top-key", "symbol = []\n", "symbol: unknown setting"),
    ("unknown-section", "[opps]\nport = 1\n", "opps: unknown setting"),
    ("bad-symbol", 'symbols = ["BTC-USDT"]\n', "symbols: "),
    ("no-symbols", "symbols = []\n", "symbols: "),
    ("public-ops-host", '[ops]\nhost = "0.0.0.0"\n', "ops.host: "),
    ("port-range", "[ops]\nport = 70000\n", "ops.port: "),
    ("recv-window", "[rest]\nrecv_window_ms = 60001\n", "rest.recv_window_ms: "),
    ("weight-share", "[rest]\nweight_share = 0\n", "rest.weight_share: "),
    ("max-below-history", "[market]\nmax_candles = 10\n", "market.max_candles: "),
    ("keepalive-too-slow", "[userstream]\nkeepalive_interval_s = 3600\n", "userstream.keepalive_interval_s: "),
    ("rotate-after-24h", "[userstream]\nrotate_after_s = 86400\n", "userstream.rotate_after_s: "),
    ("backoff-order", "[engine]\nrestart_backoff_max_s = 0.1\n", "engine.restart_backoff_max_s: "),
    ("bad-level", '[logging]\nlevel = "LOUD"\n', "logging.level: "),
    ("sim-url", '[sim]\nurl = "127.0.0.1:8900"\n', "sim.url: "),
    ("sim-speed", "[sim]\nspeed = 0\n", "sim.speed: "),
    ("sim-data", '[sim]\ndata = "/nonexistent/dir"\n', "sim.data: "),
    ("toml-syntax", "[ops\n", ""),
]


@pytest.mark.parametrize(("toml_text", "expected"), [b[1:] for b in BAD_VALUES], ids=[b[0] for b in BAD_VALUES])
def test_bad_value_is_one_line_naming_the_field(tmp_path: Path, toml_text: str, expected: str) -> None:
    config = write(tmp_path / "s.toml", toml_text)
    message = error_of(config)
    assert message.startswith(expected or str(config)), message
    if expected:
        assert f"[from {config}]" in message


def test_error_names_the_env_var_it_came_from(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AEGIS_OPS__PORT", "-1")
    message = error_of()
    assert message.startswith("ops.port:") and "[from AEGIS_OPS__PORT]" in message


def test_unknown_nested_env_key_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AEGIS_OPS__PROT", "1")
    assert error_of().startswith("ops.prot: unknown setting")


def test_error_names_the_command_line(tmp_path: Path) -> None:
    config = write(tmp_path / "s.toml", "[ops]\nport = 1\n")
    message = error_of(config, {"ops": {"port": "x"}})
    assert message.startswith("ops.port:") and "[from the command line]" in message


# --------------------------------------------------------------------------- endpoints


def test_endpoint_profiles(monkeypatch: pytest.MonkeyPatch) -> None:
    assert LIVE == Endpoints(rest_url="https://fapi.binance.com", ws_url="wss://fstream.binance.com")
    assert TESTNET.rest_url == "https://demo-fapi.binance.com"
    assert TESTNET.ws_url == "wss://fstream.binancefuture.com"
    monkeypatch.setenv("AEGIS_API_KEY", KEY)
    monkeypatch.setenv("AEGIS_API_SECRET", SECRET)
    assert load_settings(None, {"profile": "testnet"}).endpoint() == TESTNET


def test_sim_endpoint_from_url_or_embedded_server() -> None:
    settings = load_settings(None, {"sim": {"url": "http://127.0.0.1:8900/"}})
    assert not settings.embedded_sim
    assert settings.endpoint() == Endpoints(rest_url="http://127.0.0.1:8900", ws_url="ws://127.0.0.1:8900")
    embedded = load_settings(None, {})
    with pytest.raises(ValueError):
        embedded.endpoint()
    assert embedded.endpoint("http://127.0.0.1:4321").ws_url == "ws://127.0.0.1:4321"


# --------------------------------------------------------------------------- masked dump


def test_masked_dump_toml_hides_secrets_and_round_trips(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AEGIS_API_KEY", KEY)
    monkeypatch.setenv("AEGIS_API_SECRET", SECRET)
    settings = load_settings(None, {"symbols": ["SOLUSDT"], "ops": {"port": 0}, "logging": {"json": True}})
    text = masked_dump(settings, "toml")
    assert SECRET not in text and KEY not in text
    assert re.search(r"^# api_secret = \"\*{10}\"  # set", text, re.MULTILINE)
    # The dump is itself a valid settings.toml giving the same settings.
    tomllib.loads(text)
    dumped = write(tmp_path / "dumped.toml", text)
    assert load_settings(dumped, {}) == settings


def test_masked_dump_shows_absent_secrets() -> None:
    text = masked_dump(load_settings(None, {}), "toml")
    assert "# api_key: not set" in text and "# api_secret: not set" in text


def test_masked_dump_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AEGIS_API_SECRET", SECRET)
    text = masked_dump(load_settings(None, {}), "json")
    assert SECRET not in text
    data = json.loads(text)
    assert data["api_secret"] == MASK and data["api_key"] is None
    assert data["ops"]["port"] == 8787 and data["logging"]["json"] is False


def test_toml_strings_are_escaped(tmp_path: Path) -> None:
    odd = tmp_path / 'we"ird\\dir\tx'
    odd.mkdir()
    settings = load_settings(None, {"sim": {"data": str(odd)}})
    assert tomllib.loads(masked_dump(settings))["sim"]["data"] == str(odd)
