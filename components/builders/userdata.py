"""User data of the GPU nodes: a MIME multipart document carrying a nodeadm `NodeConfig`.

The launch templates set no `image_id`, so EKS picks the AL2023 NVIDIA AMI and merges its own bootstrap part (cluster
name, endpoint, CA, service CIDR) with ours. Merging only works on MIME multipart user data
(pulumi-eks#1163/#1166, terraform-aws-eks#2954), and our NodeConfig must carry no cluster fields: EKS fills them
(https://docs.aws.amazon.com/eks/latest/userguide/launch-templates.html).
"""

from __future__ import annotations

import base64

import yaml

from facts.catalog import InstanceType

NODEADM_CONTENT_TYPE = "application/node.eks.aws"
NODEADM_API_VERSION = "node.eks.aws/v1alpha1"
# Fixed boundary: the same config gives byte-identical user data, so a preview shows no spurious launch template
# change. It must not occur in any part.
BOUNDARY = "==DISAGG-NODEADM=="
# nodeadm's default `localStorage.mountPath`; the RAID0/RAID10 array is mounted at `<mountPath>/0` (the AL2023
# `setup-local-disks` script: array_mount_point="${MNT_DIR}/0"). containerd, kubelet (emptyDir volumes) and pod logs
# are bind-mounted from subdirectories of the array, so images and an emptyDir model cache land on the NVMe, and a
# hostPath cache must live under RAID0_MOUNT (the serving layer's `modelCache.hostPath` default does).
LOCAL_STORAGE_MOUNT = "/mnt/k8s-disks"
RAID0_MOUNT = f"{LOCAL_STORAGE_MOUNT}/0"


def node_config(it: InstanceType, nvme_cache: bool) -> dict | None:
    """The NodeConfig of a node, or None when it has nothing to say.

    RAID0 over the instance-store NVMe (p5.48xlarge: 8 x 3.8 TB) when the type has any and the pool wants the cache:
    model weights and multi-GB images then load from local NVMe instead of the EBS root volume. nodeadm API:
    `spec.instance.localStorage.strategy` (awslabs/amazon-eks-ami nodeadm/doc/api.md).
    """
    if not (nvme_cache and it.nvme_disks > 0):
        return None
    return {
        "apiVersion": NODEADM_API_VERSION,
        "kind": "NodeConfig",
        "spec": {"instance": {"localStorage": {"strategy": "RAID0"}}},
    }


def mime_multipart(parts: list[tuple[str, str]]) -> str:
    """Assemble `(content_type, body)` parts the way cloud-init and nodeadm read them."""
    if not parts:
        raise ValueError("a MIME document needs at least one part")
    out = f'MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary="{BOUNDARY}"\n\n'
    for content_type, body in parts:
        if BOUNDARY in body:
            raise ValueError("a part contains the MIME boundary")
        out += f"--{BOUNDARY}\nContent-Type: {content_type}\n\n{body.rstrip()}\n\n"
    return out + f"--{BOUNDARY}--\n"


def node_user_data(it: InstanceType, nvme_cache: bool) -> str | None:
    """User data text of a GPU node, or None when EKS's own bootstrap is all it needs."""
    cfg = node_config(it, nvme_cache)
    if cfg is None:
        return None
    body = "---\n" + yaml.safe_dump(cfg, sort_keys=False, default_flow_style=False)
    return mime_multipart([(NODEADM_CONTENT_TYPE, body)])


def encode(user_data: str) -> str:
    """Launch templates take user data base64-encoded."""
    return base64.b64encode(user_data.encode()).decode()
