"""The local twin of the deployment's monitoring: a metrics store fed by the local stack, and the live dashboard
page that `inferstack dev` serves at `/_local/dashboard` (the deployed stack's is the CloudWatch dashboard)."""

from inferstack_infra.local.monitoring.page import DASHBOARD_PATH, DashboardApp, QueueSampler
from inferstack_infra.local.monitoring.store import MetricsStore

__all__ = ["DASHBOARD_PATH", "DashboardApp", "MetricsStore", "QueueSampler"]
