"""Which audit trail the settings name: PostgreSQL when SAFELLM_AUDIT_URL is set (shared by API
replicas, `safellm.pgstore`), else SQLite under SAFELLM_HOME (`safellm.audit`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from safellm.audit import AuditLog, AuditTrail

if TYPE_CHECKING:
    from safellm.config import Settings


def open_trail(settings: Settings) -> AuditTrail:
    """The trail the settings name: PostgreSQL when `audit_url` is set (shared by API replicas),
    else SQLite at `settings.audit_path`."""
    if settings.audit_url is not None:
        from safellm.pgstore import PostgresAuditLog

        return PostgresAuditLog.of(settings)
    return AuditLog.of(settings)


def existing_trail(settings: Settings) -> AuditTrail | None:
    """The settings' trail, or None while it is an SQLite file not made yet (nothing served)."""
    if settings.audit_url is None and not settings.audit_path.is_file():
        return None
    return open_trail(settings)
