"""Kubernetes name rules (DNS-1123), checked before a name read from a request is used.

The webhook's input comes from whoever can reach its port: a namespace or object name taken
from an AdmissionReview goes into an Event and an API path only once it is one the API
server itself would accept. Used by ``profilis_operator.admission`` and
``profilis_operator.events``.
"""

from __future__ import annotations

import re
from typing import Final

__all__ = ["is_dns_label", "is_dns_subdomain", "is_kind", "is_uid"]

_LABEL: Final = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_SUBDOMAIN: Final = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_KIND: Final = re.compile(r"[A-Za-z][A-Za-z0-9]{0,62}")
_UID: Final = re.compile(r"[A-Za-z0-9-]{1,128}")


def is_dns_label(name: object) -> bool:
    """An RFC 1123 label, as namespaces are: at most 63 of a-z, 0-9 and inner '-'."""
    return isinstance(name, str) and len(name) <= 63 and _LABEL.fullmatch(name) is not None


def is_dns_subdomain(name: object) -> bool:
    """An RFC 1123 subdomain, as most object names are: at most 253 characters."""
    return isinstance(name, str) and len(name) <= 253 and _SUBDOMAIN.fullmatch(name) is not None


def is_kind(kind: object) -> bool:
    """A resource kind (``ReplicaSet``): letters and digits, at most 63."""
    return isinstance(kind, str) and _KIND.fullmatch(kind) is not None


def is_uid(uid: object) -> bool:
    """An object uid as the API server writes them (a UUID), or empty."""
    return isinstance(uid, str) and (uid == "" or _UID.fullmatch(uid) is not None)
