"""The alerts (node-mixin's alerts/), one module per rules file, each with its FILE."""

from __future__ import annotations

from alerts import alerting, centre, edge, fleet, security

MODULES = [edge, centre, security, fleet, alerting]
