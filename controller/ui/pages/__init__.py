"""Every page of the staff UI; importing this package registers them (one module per area)."""

from . import (  # noqa: F401
    account,
    admin,
    approval,
    audit_log,
    compose,
    dashboard,
    emergency,
    library,
    login,
    map,
    receivers,
    reports,
    schedule,
    warnings,
)
