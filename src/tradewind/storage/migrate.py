"""Schema migrations with Alembic, for SQLite and PostgreSQL alike."""

from __future__ import annotations

import io
from importlib import resources
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from alembic.util import CommandError

from tradewind.storage.base import SchemaError


def migrations_dir() -> Path:
    return Path(str(resources.files("tradewind.storage") / "migrations"))


def alembic_url(url: str) -> str:
    """The SQLAlchemy URL Alembic needs for a Tradewind store URL."""
    if url.startswith(("postgresql://", "postgres://")):
        return "postgresql+asyncpg://" + url.split("://", 1)[1]
    return url


def alembic_config(url: str, stdout: io.StringIO | None = None) -> Config:
    cfg = Config(stdout=stdout) if stdout is not None else Config()
    cfg.set_main_option("script_location", str(migrations_dir()))
    cfg.set_main_option("sqlalchemy.url", alembic_url(url).replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    """Apply migrations (blocking: call it in a thread from async code)."""
    command.upgrade(alembic_config(url), revision)


def offline_sql(dialect_url: str = "postgresql://") -> str:
    """The DDL of every migration, as ``alembic upgrade head --sql`` prints it."""
    buf = io.StringIO()
    cfg = alembic_config(dialect_url, stdout=buf)
    cfg.output_buffer = buf
    command.upgrade(cfg, "head", sql=True)
    return buf.getvalue()


def check_revision(found: str | None) -> None:
    """Raise ``SchemaError`` unless ``found`` (the database's
    ``alembic_version``; None: no such table) is this release's head: a
    reader that does not migrate must not read a schema it does not know."""
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    heads = script.get_heads()
    if found in heads:
        return
    if found is None:
        raise SchemaError("no Tradewind schema in this database (run tradewind migrate)")
    try:
        script.get_revision(found)
    except CommandError:
        raise SchemaError(
            f"the database's schema {found!r} is unknown to this tradewind "
            f"(it knows up to {', '.join(heads)}): a newer release wrote it"
        ) from None
    raise SchemaError(
        f"the database's schema {found!r} is older than {', '.join(heads)}: "
        "run tradewind migrate first"
    )
