"""What LimitRanger and ResourceQuota would refuse because of our containers
(``profilis_operator.constraints.refusal``), with the objects as the API server returns them
and the messages a user reads in the pod's Profilis status."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from profilis.k8s import INIT_CONTAINER_NAME, SIDECAR_CONTAINER_NAME
from profilis_operator.constraints import (
    NamespaceConstraints,
    ScopeRequirement,
    limit_range_rules,
    quota_rules,
    refusal,
)
from tests.operator.pods import pod

#: The operator's default resources (effective_config): requests, and a memory limit only.
AGENT = {"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"memory": "64Mi"}}
SIDECAR = {"requests": {"cpu": "10m", "memory": "32Mi"}, "limits": {"memory": "128Mi"}}


def added(agent: Any = AGENT, sidecar: Any = SIDECAR) -> list[dict[str, Any]]:
    return [
        {"name": INIT_CONTAINER_NAME, "image": "profilis:2", "resources": copy.deepcopy(agent)},
        {
            "name": SIDECAR_CONTAINER_NAME,
            "image": "profilis:2",
            "resources": copy.deepcopy(sidecar),
        },
    ]


def app(requests: Any = None, limits: Any = None, **spec: Any) -> dict[str, Any]:
    """The shop pod as the webhook sees it, with these resources on its container."""
    result = pod(**spec)
    result["spec"]["containers"][0]["resources"] = {
        "requests": requests or {"cpu": "100m", "memory": "128Mi"},
        **({"limits": limits} if limits else {}),
    }
    return result


def limit_range(*limits: dict[str, Any], name: str = "limits") -> dict[str, Any]:
    return {"kind": "LimitRange", "metadata": {"name": name}, "spec": {"limits": list(limits)}}


def quota(
    hard: dict[str, str], used: dict[str, str] | None = None, name: str = "compute", **spec: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "kind": "ResourceQuota",
        "metadata": {"name": name},
        "spec": {"hard": hard, **spec},
    }
    if used is not None:
        body["status"] = {"hard": hard, "used": used}
    return body


def check(
    the_pod: dict[str, Any],
    limit_ranges: Sequence[Any] = (),
    quotas: Sequence[Any] = (),
    ours: list[dict[str, Any]] | None = None,
    native: bool = True,
) -> tuple[str, str] | None:
    constraints = NamespaceConstraints.of(limit_ranges, quotas)
    return refusal(the_pod, added() if ours is None else ours, native, constraints)


# ----------------------------------------------------------------------------- quotas


@pytest.mark.parametrize("native", [True, False], ids=["native-sidecar", "ordinary-container"])
def test_a_quota_on_limits_cpu_needs_a_cpu_limit_on_every_container(native: bool) -> None:
    limited = app(limits={"cpu": "500m", "memory": "256Mi"})
    result = check(limited, quotas=[quota({"limits.cpu": "4"}, {"limits.cpu": "1"})], native=native)
    assert result is not None
    reason, message = result
    assert reason == "resource-quota"
    # The API server's own words, then what to change.
    assert message.startswith(
        "ResourceQuota compute: must specify limits.cpu for: "
        "profilis-agent-install,profilis-sidecar;"
    )
    assert message.endswith("change agent.resources and sidecar.resources in the ProfilisConfig")


def test_a_quota_on_requests_memory_is_met_by_our_requests() -> None:
    quotas = [quota({"requests.memory": "1Gi", "cpu": "2"}, {"requests.memory": "0", "cpu": "0"})]
    assert check(app(), quotas=quotas) is None


def test_a_quota_with_headroom_takes_our_containers() -> None:
    limited = app(limits={"cpu": "500m", "memory": "256Mi"})
    ours = added(
        {**AGENT, "limits": {"cpu": "50m", "memory": "64Mi"}},
        {**SIDECAR, "limits": {"cpu": "100m", "memory": "128Mi"}},
    )
    quotas = [
        quota(
            {"limits.cpu": "4", "limits.memory": "4Gi"}, {"limits.cpu": "1", "limits.memory": "1Gi"}
        )
    ]
    assert check(limited, quotas=quotas, ours=ours) is None


def test_a_quota_the_app_fits_but_not_with_our_containers_says_by_how_much() -> None:
    limited = app(limits={"memory": "128Mi"})
    quotas = [quota({"limits.memory": "1Gi"}, {"limits.memory": "800Mi"})]
    result = check(limited, quotas=quotas)
    assert result == (
        "resource-quota",
        "ResourceQuota compute: exceeded quota, requested: limits.memory=256Mi, used: "
        "limits.memory=800Mi, limited: limits.memory=1Gi; profilis-agent-install, "
        "profilis-sidecar add limits.memory=128Mi: change agent.resources and "
        "sidecar.resources in the ProfilisConfig or raise the quota",
    )
    # With 32Mi less in use, the pod fits exactly.
    assert (
        check(limited, quotas=[quota({"limits.memory": "1Gi"}, {"limits.memory": "768Mi"})]) is None
    )


def test_an_init_container_counts_alone_and_only_its_peak() -> None:
    """PodLimits: the installer runs before the sidecar starts, so a 1Gi installer makes the
    pod's limit 1Gi, not 1Gi plus the rest; an ordinary sidecar is summed with the app."""
    limited = app(limits={"memory": "128Mi"})
    ours = added({**AGENT, "limits": {"memory": "1Gi"}})
    quotas = [quota({"limits.memory": "1Gi"}, {"limits.memory": "1Mi"})]
    for native in (True, False):
        result = check(limited, quotas=quotas, ours=ours, native=native)
        assert result is not None
        assert "requested: limits.memory=1Gi, used: limits.memory=1Mi" in result[1]


def test_our_installer_runs_beside_the_apps_own_native_sidecar() -> None:
    """An init container runs with the native sidecars started before it: the app's 200Mi
    mesh proxy and our 1Gi installer together, then the proxy, our sidecar and the app."""
    mesh = {"name": "mesh", "restartPolicy": "Always", "resources": {"limits": {"memory": "200Mi"}}}
    meshed = app(limits={"memory": "128Mi"}, initContainers=[mesh])
    ours = added({**AGENT, "limits": {"memory": "1Gi"}})
    result = check(meshed, quotas=[quota({"limits.memory": "1200Mi"}, {})], ours=ours)
    assert result is not None
    assert (
        "requested: limits.memory=1224Mi, used: limits.memory=0, limited: limits.memory=1200Mi"
        in result[1]
    )
    assert check(meshed, quotas=[quota({"limits.memory": "1224Mi"}, {})], ours=ours) is None


CROSS_NAMESPACE = {
    "podAntiAffinity": {
        "preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 1, "podAffinityTerm": {"topologyKey": "zone", "namespaceSelector": {}}}
        ]
    }
}


@pytest.mark.parametrize(
    ("scopes", "spec", "refused"),
    [
        ([], {}, True),
        (["BestEffort"], {}, False),  # the API server allows only "pods" with it, but still
        (["NotBestEffort"], {}, True),
        (["Terminating"], {}, False),
        (["Terminating"], {"activeDeadlineSeconds": 600}, True),
        (["NotTerminating", "NotBestEffort"], {}, True),
        (["CrossNamespacePodAffinity"], {}, False),
        (["CrossNamespacePodAffinity"], {"affinity": CROSS_NAMESPACE}, True),
        (["VolumeAttributesClass"], {}, False),
    ],
)
def test_a_scoped_quota_applies_only_to_the_pods_in_its_scope(
    scopes: list[str], spec: dict[str, Any], refused: bool
) -> None:
    limited = app(limits={"cpu": "500m", "memory": "256Mi"}, **spec)
    quotas = [quota({"limits.cpu": "4"}, {}, scopes=scopes)]
    assert (check(limited, quotas=quotas) is not None) is refused


def test_our_requests_bring_a_best_effort_pod_under_a_not_best_effort_quota() -> None:
    best_effort = pod()
    best_effort["spec"]["containers"][0].pop("resources")
    quotas = [quota({"limits.memory": "4Gi"}, {}, scopes=["NotBestEffort"])]
    result = check(best_effort, quotas=quotas)
    assert result is not None
    # Ours set a memory limit; the app, best-effort until now, did not need one.
    assert "must specify limits.memory for: web;" in result[1]


@pytest.mark.parametrize(
    ("expression", "refused"),
    [
        ({"operator": "In", "values": ["high"]}, True),
        ({"operator": "In", "values": ["low"]}, False),
        ({"operator": "NotIn", "values": ["high"]}, False),
        ({"operator": "Exists"}, True),
        ({"operator": "DoesNotExist"}, False),
    ],
)
def test_a_priority_class_quota_follows_its_scope_selector(
    expression: dict[str, Any], refused: bool
) -> None:
    limited = app(limits={"cpu": "1", "memory": "256Mi"}, priorityClassName="high")
    selector = {"matchExpressions": [{"scopeName": "PriorityClass", **expression}]}
    quotas = [quota({"limits.cpu": "4"}, {}, scopeSelector=selector)]
    assert (check(limited, quotas=quotas) is not None) is refused


def test_pod_level_resources_lift_the_must_specify_rule() -> None:
    limited = app(limits={"cpu": "500m"}, resources={"limits": {"cpu": "1", "memory": "1Gi"}})
    assert check(limited, quotas=[quota({"limits.cpu": "4"}, {})]) is None


def test_pod_level_limits_are_what_a_quota_counts() -> None:
    """spec.resources replaces the containers' sum: our 128Mi sidecar does not add to it."""
    capped = app(limits={"memory": "512Mi"}, resources={"limits": {"memory": "600Mi"}})
    assert check(capped, quotas=[quota({"limits.memory": "620Mi"}, {})]) is None
    uncapped = app(limits={"memory": "512Mi"})
    assert check(uncapped, quotas=[quota({"limits.memory": "620Mi"}, {})]) is not None


def test_a_pod_refused_without_our_containers_is_not_our_refusal() -> None:
    # The app has no cpu limit either: the API server refuses it whatever we do.
    assert check(app(), quotas=[quota({"limits.cpu": "4"}, {})]) is None


def test_a_quota_on_the_pod_count_is_not_about_us() -> None:
    assert check(app(), quotas=[quota({"pods": "10"}, {"pods": "10"})]) is None


# ----------------------------------------------------------------------------- LimitRanges


def test_a_container_minimum_above_our_request() -> None:
    ranges = [limit_range({"type": "Container", "min": {"cpu": "50m"}})]
    assert check(app(), ranges) == (
        "limit-range",
        "LimitRange limits: minimum cpu usage per Container is 50m, but request is 10m "
        "(container profilis-agent-install); change agent.resources in the ProfilisConfig",
    )


def test_a_container_maximum_below_our_limit() -> None:
    ranges = [limit_range({"type": "Container", "max": {"memory": "100Mi"}})]
    result = check(app({"cpu": "100m", "memory": "64Mi"}, {"memory": "100Mi"}), ranges)
    assert result == (
        "limit-range",
        "LimitRange limits: maximum memory usage per Container is 100Mi, but limit is 128Mi "
        "(container profilis-sidecar); change sidecar.resources in the ProfilisConfig",
    )


def test_a_limit_to_request_ratio_above_the_maximum() -> None:
    ranges = [limit_range({"type": "Container", "maxLimitRequestRatio": {"memory": "2"}})]
    result = check(app(limits={"memory": "256Mi"}), ranges)
    assert result is not None
    assert result[1] == (
        "LimitRange limits: memory max limit to request ratio per Container is 2, but provided "
        "ratio is 4.000000 (container profilis-agent-install); change agent.resources in the "
        "ProfilisConfig"
    )


def test_a_ratio_on_a_resource_we_do_not_limit() -> None:
    ranges = [limit_range({"type": "Container", "maxLimitRequestRatio": {"cpu": "4"}})]
    result = check(app(limits={"cpu": "200m"}), ranges)
    assert result is not None
    assert "but no limit is specified or limit is 0 (container profilis-agent-install)" in result[1]


def test_a_maximum_gives_our_unlimited_containers_its_value_as_their_limit() -> None:
    """We add no cpu limit, but the API server re-runs LimitRanger after our patch, and a
    LimitRange's max is its default limit: "No limit is specified" never happens to us."""
    as_written = limit_range({"type": "Container", "max": {"cpu": "1"}})
    as_stored = limit_range(
        {
            "type": "Container",
            "max": {"cpu": "1"},
            "default": {"cpu": "1"},
            "defaultRequest": {"cpu": "1"},
        }
    )
    limited = app(limits={"cpu": "1"})
    assert check(limited, [as_written]) is None
    assert check(limited, [as_stored]) is None
    # ... and a maximum below our request still refuses, naming the request.
    small = limit_range({"type": "Container", "max": {"cpu": "5m"}})
    result = check(app(requests={"cpu": "5m"}, limits={"cpu": "5m"}), [small])
    assert result is not None
    assert "default cpu limit of 5m, below its request of 10m" in result[1]


def test_a_default_limit_below_our_request_makes_the_pod_invalid() -> None:
    ranges = [limit_range({"type": "Container", "default": {"cpu": "5m"}})]
    result = check(app({"cpu": "5m", "memory": "64Mi"}, {"cpu": "5m"}), ranges)
    assert result == (
        "limit-range",
        "a LimitRange gives container profilis-agent-install a default cpu limit of 5m, "
        "below its request of 10m; change agent.resources in the ProfilisConfig",
    )


def test_a_pod_maximum_exceeded_by_the_sum() -> None:
    ranges = [limit_range({"type": "Pod", "max": {"cpu": "300m"}})]
    ours = added(sidecar={**SIDECAR, "limits": {"cpu": "150m", "memory": "128Mi"}})
    result = check(app(limits={"cpu": "200m"}), ranges, ours=ours)
    assert result == (
        "limit-range",
        "LimitRange limits: maximum cpu usage per Pod is 300m, but limit is 350m; "
        "change agent.resources and sidecar.resources in the ProfilisConfig",
    )
    assert check(app(limits={"cpu": "150m"}), ranges, ours=ours) is None


def test_a_namespace_with_the_usual_defaults_and_a_quota_takes_our_containers() -> None:
    ranges = [
        limit_range(
            {
                "type": "Container",
                "default": {"cpu": "500m", "memory": "512Mi"},
                "defaultRequest": {"cpu": "100m", "memory": "128Mi"},
                "max": {"cpu": "2", "memory": "2Gi"},
                "min": {"cpu": "10m", "memory": "16Mi"},
            }
        )
    ]
    quotas = [quota({"requests.cpu": "4", "limits.cpu": "8", "limits.memory": "8Gi"}, {})]
    # The app's container got the defaults from LimitRanger before the webhook saw it.
    limited = app(limits={"cpu": "500m", "memory": "512Mi"})
    assert check(limited, ranges, quotas) is None
    assert check(limited, ranges, quotas, native=False) is None


# ----------------------------------------------------------------------------- garbage

GARBAGE: list[Any] = [
    {},
    {"spec": None},
    {"spec": {"limits": "x"}},
    {"spec": {"limits": [None, 1, {"type": "Container", "min": {"cpu": "lots"}}]}},
    {"spec": {"limits": [{"type": "Container", "max": {"memory": ["1Gi"]}, "min": "1"}]}},
    {"spec": {"hard": {"limits.cpu": "NaN", "limits.memory": "Infinity"}}},
    {"spec": {"hard": {"limits.cpu": {"x": 1}}}, "status": {"used": {"limits.cpu": []}}},
    {"spec": {"hard": {"limits.cpu": "1e999999999"}}},
    {
        "spec": {
            "hard": {"limits.cpu": "1"},
            "scopeSelector": {
                "matchExpressions": [{"scopeName": "PriorityClass", "operator": "NotIn"}]
            },
        }
    },
    {"spec": {"hard": {"limits.cpu": "1"}, "scopeSelector": {"matchExpressions": [{}]}}},
    {"spec": {"hard": {"limits.cpu": "1"}, "scopes": [None, 3]}, "metadata": []},
]


@pytest.mark.parametrize("body", GARBAGE)
def test_unreadable_objects_count_for_nothing(body: Any) -> None:
    assert check(app(limits={"cpu": "1"}), [body], [body]) is None


def test_rules_read_from_objects_get_the_api_servers_defaults() -> None:
    """A LimitRange as written gets the defaults the API server stores with it: a max is the
    default limit, which (or a min) is the default request."""
    (item,) = limit_range_rules(
        limit_range({"type": "Container", "max": {"cpu": "2"}, "min": {"memory": "16Mi"}})
    ).items
    assert (dict(item.default), dict(item.default_request)) == (
        {"cpu": 2},
        {"cpu": 2, "memory": 16 * 2**20},
    )
    rules = quota_rules(quota({"limits.cpu": "1"}, {"limits.cpu": "500m"}, scopes=["Terminating"]))
    assert (rules.name, dict(rules.hard), dict(rules.used)) == (
        "compute",
        {"limits.cpu": 1},
        {"limits.cpu": Decimal("0.5")},
    )
    assert rules.scopes == (ScopeRequirement("Terminating", "Exists"),)


KEYS = "spec status limits hard used type min max cpu limits.cpu scopes resources containers"
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.sampled_from(["", "1", "10m", "1Gi", "x", "In"]),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(KEYS.split()), inner, max_size=4)
    ),
    max_leaves=8,
)


@settings(max_examples=300, deadline=None)
@given(limit_range_body=json_values, quota_body=json_values, pod_body=json_values)
def test_whatever_the_objects_hold_the_answer_is_none_or_a_reason(
    limit_range_body: Any, quota_body: Any, pod_body: Any
) -> None:
    for the_pod in (pod_body, app(limits={"cpu": "1"})):
        result = check(
            the_pod if isinstance(the_pod, dict) else {}, [limit_range_body], [quota_body]
        )
        assert result is None or result[0] in ("limit-range", "resource-quota")
