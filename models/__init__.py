"""SQLAlchemy ORM: every table of the service; the schema only changes through a migration."""

from models.audit_event import AuditEvent
from models.base import Base, utcnow
from models.deletion_request import DeletionRequest, RequestItem
from models.job import Job
from models.model_version import ModelAlias, ModelVersion
from models.organisation import ROLES, ApiKey, Organisation

__all__ = [
    "ROLES",
    "ApiKey",
    "AuditEvent",
    "Base",
    "DeletionRequest",
    "Job",
    "ModelAlias",
    "ModelVersion",
    "Organisation",
    "RequestItem",
    "utcnow",
]
