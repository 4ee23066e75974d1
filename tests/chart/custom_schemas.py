"""JSON schemas of the third-party custom resources the chart renders, for offline checks.

kubernetes-validate has no schemas for custom resources, and the Prometheus Operator's and
cert-manager's CRDs are not installed here. These schemas hold the part of each CRD the chart
uses, with the upstream field names, types and enums (prometheus-operator v0.82
monitoring.coreos.com/v1, cert-manager v1.x cert-manager.io/v1), and refuse fields they do
not know at the levels the chart writes: a misspelt key in a template fails here instead of
being pruned silently by the API server. ProfilisConfig is checked against its real CRD.
"""

from __future__ import annotations

from typing import Any, Final

Schema = dict[str, Any]

#: monitoring.coreos.com's Duration pattern.
_PROM_DURATION: Final = (
    r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"
)
_STRING_MAP: Final[Schema] = {"type": "object", "additionalProperties": {"type": "string"}}
_METADATA: Final[Schema] = {
    "type": "object",
    "required": ["name"],
    "properties": {
        "name": {"type": "string", "minLength": 1},
        "namespace": {"type": "string", "minLength": 1},
        "labels": _STRING_MAP,
        "annotations": _STRING_MAP,
    },
}
_LABEL_SELECTOR: Final[Schema] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "matchLabels": _STRING_MAP,
        "matchExpressions": {
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["key", "operator"],
                "properties": {
                    "key": {"type": "string"},
                    "operator": {"type": "string"},
                    "values": {"type": "array", "items": {"type": "string"}},
                },
            },
        },
    },
}
_NAMESPACE_SELECTOR: Final[Schema] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "any": {"type": "boolean"},
        "matchNames": {"type": "array", "items": {"type": "string"}},
    },
}


def _endpoint(port_field: str) -> Schema:
    return {
        "type": "object",
        "additionalProperties": False,
        "required": [port_field],
        "properties": {
            port_field: {"type": "string", "minLength": 1},
            "path": {"type": "string", "pattern": "^/"},
            "interval": {"type": "string", "pattern": _PROM_DURATION},
            "scrapeTimeout": {"type": "string", "pattern": _PROM_DURATION},
        },
    }


def _resource(api_version: str, kind: str, spec: Schema) -> Schema:
    return {
        "type": "object",
        "additionalProperties": False,
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "apiVersion": {"const": api_version},
            "kind": {"const": kind},
            "metadata": _METADATA,
            "spec": spec,
        },
    }


_RULE: Final[Schema] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["expr"],
    "properties": {
        "alert": {"type": "string", "minLength": 1},
        "record": {"type": "string", "minLength": 1},
        "expr": {"type": ["string", "integer"]},
        "for": {"type": "string", "pattern": _PROM_DURATION},
        "keep_firing_for": {"type": "string", "pattern": _PROM_DURATION},
        "labels": _STRING_MAP,
        "annotations": _STRING_MAP,
    },
    # Exactly one of alert and record, as the operator's admission webhook insists.
    "oneOf": [{"required": ["alert"]}, {"required": ["record"]}],
}
_KEY_USAGES: Final = [
    "signing", "digital signature", "content commitment", "key encipherment", "key agreement",
    "data encipherment", "cert sign", "crl sign", "encipher only", "decipher only", "any",
    "server auth", "client auth", "code signing", "email protection", "s/mime",
    "ipsec end system", "ipsec tunnel", "ipsec user", "timestamping", "ocsp signing",
    "microsoft sgc", "netscape sgc",
]  # fmt: skip
_GO_DURATION: Final = r"^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$"

#: Per-scrape limits of a PodMonitor's or ServiceMonitor's spec (int64, minimum 0 upstream).
_SCRAPE_LIMITS: Final[dict[str, Schema]] = {
    name: {"type": "integer", "minimum": 0}
    for name in ("sampleLimit", "labelLimit", "labelValueLengthLimit")
}

SCHEMAS: Final[dict[str, Schema]] = {
    "PodMonitor": _resource(
        "monitoring.coreos.com/v1",
        "PodMonitor",
        {
            "type": "object",
            "additionalProperties": False,
            "required": ["selector"],
            "properties": {
                "selector": _LABEL_SELECTOR,
                "namespaceSelector": _NAMESPACE_SELECTOR,
                "podMetricsEndpoints": {"type": "array", "items": _endpoint("port")},
                **_SCRAPE_LIMITS,
            },
        },
    ),
    "ServiceMonitor": _resource(
        "monitoring.coreos.com/v1",
        "ServiceMonitor",
        {
            "type": "object",
            "additionalProperties": False,
            "required": ["selector"],
            "properties": {
                "selector": _LABEL_SELECTOR,
                "namespaceSelector": _NAMESPACE_SELECTOR,
                "endpoints": {"type": "array", "items": _endpoint("port")},
                **_SCRAPE_LIMITS,
            },
        },
    ),
    "PrometheusRule": _resource(
        "monitoring.coreos.com/v1",
        "PrometheusRule",
        {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "groups": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["name"],
                        "properties": {
                            "name": {"type": "string", "minLength": 1},
                            "interval": {"type": "string", "pattern": _PROM_DURATION},
                            "limit": {"type": "integer"},
                            "labels": _STRING_MAP,
                            "rules": {"type": "array", "items": _RULE},
                        },
                    },
                }
            },
        },
    ),
    "Certificate": _resource(
        "cert-manager.io/v1",
        "Certificate",
        {
            "type": "object",
            "additionalProperties": False,
            "required": ["issuerRef", "secretName"],
            "properties": {
                "secretName": {"type": "string", "minLength": 1},
                "commonName": {"type": "string", "maxLength": 64},
                "dnsNames": {"type": "array", "items": {"type": "string"}, "minItems": 1},
                "ipAddresses": {"type": "array", "items": {"type": "string"}, "minItems": 1},
                "duration": {"type": "string", "pattern": _GO_DURATION},
                "renewBefore": {"type": "string", "pattern": _GO_DURATION},
                "isCA": {"type": "boolean"},
                "usages": {"type": "array", "items": {"enum": _KEY_USAGES}},
                "privateKey": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "algorithm": {"enum": ["RSA", "ECDSA", "Ed25519"]},
                        "encoding": {"enum": ["PKCS1", "PKCS8"]},
                        "size": {"type": "integer"},
                        "rotationPolicy": {"enum": ["Never", "Always"]},
                    },
                },
                "issuerRef": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["name"],
                    "properties": {
                        "name": {"type": "string", "minLength": 1},
                        "kind": {"type": "string"},
                        "group": {"type": "string"},
                    },
                },
            },
        },
    ),
    "Issuer": _resource(
        "cert-manager.io/v1",
        "Issuer",
        {
            "type": "object",
            "additionalProperties": False,
            "minProperties": 1,
            "maxProperties": 1,
            "properties": {
                "selfSigned": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "crlDistributionPoints": {"type": "array", "items": {"type": "string"}}
                    },
                },
                "ca": {
                    "type": "object",
                    "required": ["secretName"],
                    "properties": {"secretName": {"type": "string"}},
                },
            },
        },
    ),
}
