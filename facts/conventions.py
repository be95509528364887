"""The project's conventions: the names every layer must agree on, defined once.

Roles, the label and taint keys the node pools set and the pods select, the AWS tag keys the teardown and the
policy pack look for, and the well-known Kubernetes label keys. A renamed label here moves every writer and
reader together; a second definition elsewhere is a defect (tests/unit/test_layers.py looks for copies).
"""

from __future__ import annotations

# The two engine roles of disaggregated serving, in start order, and the router in front of them.
ROLES = ("prefill", "decode")
ROUTER = "router"
PART_OF = "disagg"

PREFIX = "disagg.io"

# Node labels the pools set and the pods select (components/builders/scheduling.py).
POOL_LABEL = f"{PREFIX}/pool"
ROLE_LABEL = f"{PREFIX}/role"
EFA_LABEL = f"{PREFIX}/efa"
SYSTEM_POOL = "system"
SYSTEM_ROLE = "system"
# The GPU taint keeps non-GPU pods off nodes that cost $55+/h; the GPU Operator's own daemons tolerate it.
GPU_TAINT = {"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"}

# Pod and Service labels of the serving layer.
# On the pods that serve the engine's HTTP API (single-node pods and multi-node leaders): what the router
# discovers, the role Services select and the metrics are scraped from. Multi-node workers run only the
# engine's distributed runtime and must never receive requests.
ENDPOINT_LABEL = f"{PREFIX}/endpoint"
# On the Services the ServiceMonitor scrapes.
METRICS_LABEL = f"{PREFIX}/metrics"
# Which part of a multi-node group a pod is.
PART_LABEL = f"{PREFIX}/part"
DEPLOYMENT_LABEL = f"{PREFIX}/deployment"
# On every engine pod: the engine revision (engine.engine_revision). The router selects only the current revision
# of both roles, so it never pairs a prefill pod with a decode pod of another engine or connector version.
REVISION_LABEL = f"{PREFIX}/engine-revision"

# AWS tags on every taggable resource (provider default tags); ops/teardown.py sweeps by them.
STACK_TAG = f"{PREFIX}/stack"
DEPLOYMENT_TAG = f"{PREFIX}/deployment"
MANAGED_BY_TAG = "ManagedBy"
MANAGED_BY = "pulumi"

# Well-known Kubernetes label keys (kubernetes.io/docs/reference/labels-annotations-taints).
ZONE_LABEL = "topology.kubernetes.io/zone"
HOSTNAME_LABEL = "kubernetes.io/hostname"
INSTANCE_TYPE_LABEL = "node.kubernetes.io/instance-type"
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"
