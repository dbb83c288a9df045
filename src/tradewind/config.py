"""Settings: environment (``TRADEWIND_…``, nested with ``__``), an optional YAML
file (``TRADEWIND_CONFIG``), and secret files (``/run/secrets`` or any
``TRADEWIND_…_FILE`` variable), validated once at start.

An invalid value raises ``ConfigError`` naming the setting; the CLI turns it
into one line on stderr and exit status 2. Secrets are ``SecretStr`` and never
appear in reprs, logs or errors.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

ENV_PREFIX = "TRADEWIND_"
SECRETS_DIR = Path("/run/secrets")


class ConfigError(ValueError):
    """A setting is missing or invalid; ``key`` names it as a user writes it."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"invalid setting {key}: {message}")
        self.key = key


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BusSettings(_Section):
    kind: Literal["memory", "redis"] = "memory"
    redis_url: SecretStr = SecretStr("redis://127.0.0.1:6379/0")
    username: str | None = Field(None, min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.-]+$")
    """This service's Redis ACL user (``tradewind acl``); with ``password``
    (from ``TRADEWIND_BUS__PASSWORD_FILE``) it overrides credentials in the URL."""
    password: SecretStr | None = None
    prefix: str = Field("tw", min_length=1, pattern=r"^[A-Za-z0-9_.:-]+$")
    partitions: int = Field(8, ge=1, le=1024)
    market_maxlen: int = Field(1_000_000, ge=1000)
    capacity: int = Field(65_536, ge=16)
    max_deliveries: int = Field(5, ge=1, le=100)
    claim_idle_ms: int = Field(30_000, ge=10)
    batch_size: int = Field(1024, ge=1, le=100_000)
    block_ms: int = Field(200, ge=1, le=60_000)
    max_message_bytes: int = Field(65_536, ge=1024, le=64 * 1024 * 1024)
    """A bus entry larger than this is dead-lettered unread (the largest real
    event, a deep book snapshot, is a few kB)."""
    dead_letter_maxlen: int = Field(10_000, ge=10)
    """Dead letters kept; older ones are dropped and counted
    (``tradewind_dead_letters_dropped_total``)."""
    stall_after_s: float = Field(30.0, gt=0)
    """A service's /readyz fails when a producer of its input topics has had
    unacknowledged entries, not shrinking, for this long (frozen or dead)."""
    keep_ms: int = Field(600_000, ge=0)
    """Consumed entries younger than this stay in their stream (a window for
    operators and post-run checks); see docs/distributed.md, "Trimming"."""


MARKET_TABLES = ("trades", "quotes", "book_deltas", "bars")
"""The partitioned tables (``storage.schema.PARTITIONED``; a test keeps the two equal)."""


def _partition_interval(v: int) -> int:
    if v < 3600 or v > 31 * 86_400 or (86_400 % v and v % 86_400):
        raise ValueError("must divide a day (3600, 21600, 43200 …) or be whole days, up to 31")
    return v


class RetentionSettings(_Section):
    """Days each market table family is kept on PostgreSQL (0: forever).
    Whole expired partitions are dropped; trading tables are never dropped."""

    trades_days: float = Field(90.0, ge=0)
    quotes_days: float = Field(7.0, ge=0)
    book_deltas_days: float = Field(7.0, ge=0)
    bars_days: float = Field(0.0, ge=0)

    def days(self, table: str) -> float:
        return float(getattr(self, f"{table}_days"))


class StoreSettings(_Section):
    url: SecretStr = SecretStr("sqlite:///tradewind.db")
    password: SecretStr | None = None
    batch_size: int = Field(5000, ge=1, le=1_000_000)
    linger_ms: int = Field(0, ge=0, le=10_000)
    """db_writer: after a batch smaller than ``batch_size``, wait this long before
    fetching again, so that a trickle of live ticks reaches the database in
    fewer, larger transactions (each costs about a millisecond of CPU across
    db_writer and PostgreSQL). 0 writes what each fetch brings at once."""
    flush_interval_ms: int = Field(50, ge=1, le=60_000)
    retry_max_s: float = Field(30.0, gt=0)
    partition_interval_s: int = Field(86_400, ge=3600, le=31 * 86_400)
    """PostgreSQL: the time range of one partition of a market table. Must
    divide a day or be whole days, so partitions start at UTC midnight."""
    partition_intervals: dict[str, int] = {
        "trades": 21_600,
        "quotes": 21_600,
        "book_deltas": 21_600,
    }
    """Per table, instead of ``partition_interval_s``: the families that reach
    millions of rows a day get 6 h partitions, so one retention drop unlinks a
    quarter of a day's files and stays under a second (a drop's time is the
    unlinking, bench/README.md "Storage"); bars keep one a day. Existing
    partitions keep their range: new ones fill the gaps after them."""
    partitions_ahead: int = Field(3, ge=1, le=366)
    """How far ahead db_writer and ``tradewind migrate`` keep partitions
    created: this many of the longest interval."""
    retention: RetentionSettings = RetentionSettings()
    maintenance_interval_s: float = Field(300.0, gt=0, le=86_400)
    """db_writer: how often it creates partitions ahead, drops expired ones
    and reports the database size."""
    volume_bytes: int = Field(0, ge=0)
    """Size of PostgreSQL's volume, exported for the disk-full alert (0: unknown)."""
    downsample_quotes_ms: int = Field(0, ge=0, le=3_600_000)
    """db_writer: store at most one quote per symbol per this many ms of event
    time (0: every quote). What is lost: ``services/downsample.py``."""
    downsample_book_s: float = Field(0.0, ge=0, le=86_400)
    """db_writer: store each book as one snapshot per this many s of event
    time instead of its deltas (0: every delta)."""

    @field_validator("partition_interval_s")
    @classmethod
    def _interval(cls, v: int) -> int:
        return _partition_interval(v)

    @field_validator("partition_intervals")
    @classmethod
    def _intervals(cls, v: dict[str, int]) -> dict[str, int]:
        for table, seconds in v.items():
            if table not in MARKET_TABLES:
                raise ValueError(f"{table!r} is not one of {', '.join(MARKET_TABLES)}")
            _partition_interval(seconds)
        return v

    def interval_s(self, table: str) -> int:
        """Seconds of one partition of ``table``."""
        return self.partition_intervals.get(table, self.partition_interval_s)

    @field_validator("url")
    @classmethod
    def _scheme(cls, v: SecretStr) -> SecretStr:
        if not v.get_secret_value().startswith(("sqlite:///", "postgresql://", "postgres://")):
            raise ValueError("must start with sqlite:/// or postgresql://")
        return v


class FeedSettings(_Section):
    source: Literal["replay", "live"] = "replay"
    data: list[Path] = []
    speed: float = Field(0.0, ge=0.0, description="0 = as fast as possible, 1 = real time")
    format: str | None = Field(
        None,
        description="format of every file in data (see docs/market-data.md); default: detected",
    )
    exchanges: list[str] = ["binance"]
    symbols: list[str] = ["BTCUSDT"]
    stale_after_s: float = Field(30.0, gt=0)
    lockstep_timeout_s: float = Field(
        300.0,
        ge=0,
        description="a lockstep replay (speed 0) waits this long for a group that is "
        "behind, then goes on and marks the run not deterministic (0: wait for ever)",
    )
    ws_urls: dict[str, str] = {}
    rest_urls: dict[str, str] = {}
    symbols_by_exchange: dict[str, list[str]] = {}
    symbols_per_connection: int = Field(50, ge=1, le=1024)
    reconnect_min_s: float = Field(0.5, gt=0)
    reconnect_max_s: float = Field(30.0, gt=0)
    max_connection_age_s: float = Field(86_100.0, gt=0, description="Binance closes at 24 h")
    ping_interval_s: float = Field(20.0, gt=0)
    timeout_s: float = Field(10.0, gt=0, description="connect, pong and REST timeout")
    rest_requests_per_s: float = Field(1.0, gt=0, description="snapshot/backfill rate per exchange")
    channels: dict[str, list[str]] = Field(
        {}, description="channels per exchange id; an exchange not named gets its defaults"
    )
    kline_interval: str = Field(
        "1m",
        pattern=r"^(1s|[135]m|15m|30m|[12468]h|12h|[13]d|1w|1M)$",
        description="interval of the Binance kline channel",
    )


class StrategySettings(_Section):
    name: str = "ema_cross"
    params: dict[str, Any] = {}


class RiskSettings(_Section):
    max_position: Decimal = Field(
        Decimal("0.05"),
        gt=0,
        description="worst-case position per symbol in its base coin "
        "(inverse contracts: contracts x contract_size / price)",
    )
    max_position_by_symbol: dict[str, Decimal] = {}
    """Per-symbol overrides of ``max_position`` (base coin), keyed ``exchange:symbol``."""
    max_order_notional: Decimal = Field(Decimal("5000"), gt=0)
    max_orders_per_second: int = Field(5, ge=1)
    max_orders_per_minute: int = Field(120, ge=1)
    initial_state: Literal["active", "reducing", "halted"] = "active"
    account_currency: str = Field("USDT", min_length=1)
    currency_aliases: list[str] = ["USD", "USDC"]
    max_gross_exposure: Decimal = Field(Decimal("25000"), gt=0)
    max_net_exposure: Decimal = Field(Decimal("25000"), gt=0)
    max_open_orders: int = Field(20, ge=1)
    fat_finger_pct: Decimal = Field(Decimal("5"), gt=0, le=100)
    stale_after_s: float = Field(30.0, gt=0)
    max_daily_loss: Decimal = Field(Decimal("500"), gt=0)
    max_drawdown: Decimal = Field(Decimal("1000"), gt=0)
    loss_breach_state: Literal["reducing", "halted"] = "halted"
    flatten_on_breach: bool = False
    stopout_loss: Decimal = Field(Decimal("100"), gt=0)
    loss_streak: int = Field(3, ge=1)
    cooldown_s: float = Field(300.0, ge=0)


class PaperSettings(_Section):
    taker_fee_bps: Decimal = Field(Decimal("10"), ge=0)
    maker_fee_bps: Decimal = Field(Decimal("2"), ge=0)
    slippage_bps: Decimal = Field(Decimal("1"), ge=0)
    seed: int = 7
    quote_currency: str = "USDT"
    latency_ms: float = Field(5.0, ge=0, le=60_000, description="decision to arrival, fixed part")
    latency_jitter_ms: float = Field(2.0, ge=0, le=60_000, description="plus uniform [0, this)")
    history_s: float = Field(600.0, gt=0, description="event time of market history kept")
    history_max_events: int = Field(200_000, ge=1000)
    checkpoint_every: int = Field(512, ge=16, le=100_000)
    bar_slippage_ticks: int = Field(
        0, ge=0, le=1_000_000, description="bar data: market fills this many ticks past the open"
    )
    bar_volume_fraction: Decimal = Field(
        Decimal(0),
        ge=0,
        le=1,
        description="bar data: most of a bar's volume one order takes (0: no cap)",
    )


class ExecutionSettings(_Section):
    """Where orders go. ``paper`` simulates; ``binance`` and ``ccxt`` trade for real
    (API keys only from secret files: ``TRADEWIND_EXECUTION__API_KEY_FILE``)."""

    venue: Literal["paper", "binance", "ccxt"] = "paper"
    exchange: str = "binance"
    ccxt_id: str = "binance"
    api_key: SecretStr | None = None
    api_secret: SecretStr | None = None
    api_passphrase: SecretStr | None = None
    """The third credential some exchanges issue with a key (OKX's
    passphrase); like the key, only from a secret file."""
    # Empty: the venue's own endpoints (``exchanges/binance/urls.py``).
    rest_url: str = ""
    ws_url: str = ""
    testnet: bool = False
    testnet_rest_url: str = ""
    testnet_ws_url: str = ""
    recv_window_ms: int = Field(5000, ge=1, le=60_000)
    request_timeout_s: float = Field(5.0, gt=0, le=120)
    connect_timeout_s: float = Field(5.0, gt=0, le=120)
    max_retry_after_s: float = Field(120.0, gt=0)
    breaker_errors: int = Field(5, ge=1, le=1000)
    breaker_cooldown_s: float = Field(30.0, gt=0)
    settle_attempts: int = Field(20, ge=1, le=10_000)
    settle_interval_s: float = Field(0.5, gt=0)
    exchange_info_refresh_s: float = Field(
        3600.0, gt=0, description="binance: reload symbol rules and the clock offset this often"
    )
    reconcile_interval_s: float = Field(30.0, gt=0)
    wall_grace_ms: float = Field(
        50.0, ge=0, description="paper: land orders this late on a quiet market"
    )
    allow_paper_with_keys: bool = False
    """Acknowledge that real exchange keys are mounted while the venue is ``paper``
    (otherwise ``tradewind service execution`` refuses to start)."""


class HttpSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)


MIN_SECRET_BITS = 256
"""Shared secrets (control token, order key) must carry at least 32 bytes of
entropy: ``python -c 'import secrets; print(secrets.token_urlsafe(32))'`` or
``openssl rand -hex 32``."""
_ALPHABETS = (
    (16, frozenset("0123456789abcdefABCDEF")),
    (32, frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567=")),
    (64, frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=_-")),
)


def secret_bits(value: str) -> float:
    """An upper bound of a random secret's entropy: its length times the bits
    per character of the smallest common alphabet (hex, base32, base64) it
    fits, 6.5 bits for anything else; a string of few distinct characters
    counts as nothing, so ``aaaa…`` never passes however long."""
    if len(set(value)) < 8:
        return 0.0
    chars = set(value)
    per_char = next((math.log2(n) for n, a in _ALPHABETS if chars <= a), 6.5)
    return len(value) * per_char


def _strong_secret(v: SecretStr | None) -> SecretStr | None:
    if v is None:
        return None
    raw = v.get_secret_value()
    if not raw.strip():
        raise ValueError("is empty; unset it or create one of 32 random bytes")
    if raw != raw.strip() or any(c.isspace() for c in raw):
        raise ValueError("contains whitespace; use 32 random bytes as hex or base64")
    bits = secret_bits(raw)
    if bits < MIN_SECRET_BITS:
        raise ValueError(
            f"is too weak (about {int(bits)} of the {MIN_SECRET_BITS} bits required); "
            "create one with `openssl rand -hex 32`"
        )
    return v


class ControlSettings(_Section):
    """Trust on the bus: the operator's control token (``tradewind halt`` …) and
    the order key risk signs its orders with and execution checks them by."""

    token: SecretStr | None = None
    order_key: SecretStr | None = None
    max_age_s: float = Field(30.0, gt=0, le=3600)
    reply_timeout_s: float = Field(10.0, gt=0, le=600)

    @field_validator("token", "order_key")
    @classmethod
    def _strong(cls, v: SecretStr | None) -> SecretStr | None:
        return _strong_secret(v)


class Settings(BaseSettings):
    """Every Tradewind setting; nested sections map to ``TRADEWIND_SECTION__KEY``."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
    )

    service_name: str = "tradewind"
    log_level: Literal["trace", "debug", "info", "warning", "error"] = "info"
    """``trace`` is ``debug`` plus every WebSocket frame (the websockets library's
    own debug log): off at ``debug``, where it would drown everything else."""
    log_json: bool = True
    drain_timeout_s: float = Field(20.0, gt=0, le=600)
    bus: BusSettings = BusSettings()
    store: StoreSettings = StoreSettings()
    feed: FeedSettings = FeedSettings()
    strategy: StrategySettings = StrategySettings()
    risk: RiskSettings = RiskSettings()
    paper: PaperSettings = PaperSettings()
    execution: ExecutionSettings = ExecutionSettings()
    http: HttpSettings = HttpSettings()
    control: ControlSettings = ControlSettings()

    @field_validator("service_name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not v or any(c.isspace() for c in v):
            raise ValueError("must be a non-empty name without spaces")
        return v

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (
            init_settings,
            _EnvWithoutFiles(settings_cls),
            _SecretFilesSource(settings_cls),
            _YamlSource(settings_cls),
        )


def _set_path(target: dict[str, Any], path: list[str], value: Any) -> None:
    for part in path[:-1]:
        target = target.setdefault(part, {})
    target[path[-1]] = value


class _PlainValueError(ValueError):
    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


def _plain_value(key: str, annotation: Any, value: str, why: str) -> Any:
    """A list or dict setting written plainly: ``a,b`` for a list, ``k=v,k2=v2``
    for a dict, ``k=a,b,k2=c`` for a dict of lists (JSON works for all)."""
    origin = get_origin(annotation)
    args = get_args(annotation)
    if origin in (list, tuple, set, frozenset):
        return [v.strip() for v in value.split(",") if v.strip()]
    if origin is dict:
        of_lists = len(args) == 2 and get_origin(args[1]) in (list, tuple, set)
        out: dict[str, Any] = {}
        last: str | None = None
        for token in (t.strip() for t in value.split(",")):
            if not token:
                continue
            k, sep, v = token.partition("=")
            if sep and k.strip():
                last = k.strip()
                out[last] = [v.strip()] if of_lists else v.strip()
            elif of_lists and last is not None:
                out[last].append(token)
            else:
                raise _PlainValueError(
                    key, f"expected JSON or KEY=VALUE,KEY=VALUE, got {token!r} ({why})"
                )
        return out
    raise _PlainValueError(
        key,
        f"expected a JSON object, or set its keys one by one as {ENV_PREFIX}{key.upper()}__KEY"
        f" ({why})",
    )


class _EnvWithoutFiles(EnvSettingsSource):
    """The environment, less ``…_FILE`` pointers (read by ``_SecretFilesSource``)
    and ``TRADEWIND_CONFIG``/``TRADEWIND_SECRETS_DIR`` (which name other sources).
    List and dict settings take JSON or the plain form (``_plain_value``)."""

    def decode_complex_value(self, field_name: str, field: Any, value: Any) -> Any:
        try:
            return super().decode_complex_value(field_name, field, value)
        except ValueError as exc:
            if not isinstance(value, str):
                raise
            annotation = getattr(field, "annotation", None)
            return _plain_value(field_name, annotation, value, f"not JSON: {exc}")

    def _load_env_vars(self) -> Mapping[str, str | None]:
        skip = (f"{ENV_PREFIX}config".lower(), f"{ENV_PREFIX}secrets_dir".lower())
        return {
            k: v
            for k, v in super()._load_env_vars().items()
            if not k.lower().endswith("_file") and k.lower() not in skip
        }


class _YamlSource(PydanticBaseSettingsSource):
    """The file named by ``TRADEWIND_CONFIG``; lower precedence than the environment."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        path = os.environ.get(f"{ENV_PREFIX}CONFIG")
        if not path:
            return {}
        try:
            data = yaml.safe_load(Path(path).read_bytes().decode())
        except UnicodeDecodeError:
            raise ConfigError(
                f"{ENV_PREFIX}CONFIG", f"{path} is not a text file; name a YAML file"
            ) from None
        except OSError as exc:
            raise ConfigError(
                f"{ENV_PREFIX}CONFIG", f"cannot read {path}: {exc.strerror}"
            ) from None
        except yaml.YAMLError as exc:
            # Never the parser's message: it quotes the offending line, which
            # may hold a secret. The position is enough to find it.
            mark = getattr(exc, "problem_mark", None)
            where = "" if mark is None else f" (line {mark.line + 1}, column {mark.column + 1})"
            raise ConfigError(f"{ENV_PREFIX}CONFIG", f"{path} is not valid YAML{where}") from None
        if data is None:
            return {}
        if not isinstance(data, dict):
            raise ConfigError(f"{ENV_PREFIX}CONFIG", f"{path} must hold a mapping")
        return data


class _SecretFilesSource(PydanticBaseSettingsSource):
    """``TRADEWIND_X__Y_FILE=/path`` and ``/run/secrets/tradewind_x__y`` supply
    ``x.y`` from a file, so secrets never sit in the environment or the image."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, path in os.environ.items():
            if (
                name.startswith(ENV_PREFIX)
                and name.endswith("_FILE")
                and name != f"{ENV_PREFIX}CONFIG_FILE"
            ):
                key = name[len(ENV_PREFIX) : -len("_FILE")].lower()
                try:
                    value = Path(path).read_text().strip()
                except OSError as exc:
                    raise ConfigError(name, f"cannot read secret file: {exc.strerror}") from None
                _set_path(out, key.split("__"), value)
        secrets_dir = Path(os.environ.get(f"{ENV_PREFIX}SECRETS_DIR", str(SECRETS_DIR)))
        if secrets_dir.is_dir():
            for f in sorted(secrets_dir.iterdir()):
                if f.name.lower().startswith(ENV_PREFIX.lower()) and f.is_file():
                    key = f.name[len(ENV_PREFIX) :].lower()
                    path_parts = key.split("__")
                    node: Any = out
                    for part in path_parts[:-1]:
                        node = node.get(part, {}) if isinstance(node, dict) else {}
                    if not (isinstance(node, dict) and path_parts[-1] in node):
                        _set_path(out, path_parts, f.read_text().strip())
        return out


def _key_for(loc: tuple[int | str, ...]) -> str:
    parts = [str(p) for p in loc if not isinstance(p, int)]
    return ENV_PREFIX + "__".join(p.upper() for p in parts)


def load_settings(**overrides: Any) -> Settings:
    """Build and validate settings; raises ``ConfigError`` naming the bad key."""
    try:
        return Settings(**overrides)
    except SettingsError as exc:
        cause = exc.__cause__
        m = re.search(r'field "(\w+)"', str(exc))
        section = m.group(1) if m else ""
        if isinstance(cause, _PlainValueError):
            parts = [section] if cause.key == section else [section, cause.key]
            raise ConfigError(_key_for(tuple(parts)), str(cause)) from None
        raise ConfigError(_key_for((section,)), str(cause or exc)) from None
    except ValidationError as exc:
        err = exc.errors(include_url=False, include_input=False)[0]
        raise ConfigError(_key_for(err["loc"]), err["msg"]) from None
