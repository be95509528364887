"""GPU node user data: MIME multipart with a nodeadm NodeConfig that builds a RAID0 of the instance-store NVMe."""

from __future__ import annotations

import base64
import email

import pytest
import yaml

from components.builders.userdata import (
    BOUNDARY,
    NODEADM_CONTENT_TYPE,
    encode,
    mime_multipart,
    node_config,
    node_user_data,
)
from facts.catalog import CATALOG, instance_type

NVME_TYPES = sorted(n for n, it in CATALOG.items() if it.nvme_disks > 0)
NO_NVME_TYPES = sorted(n for n, it in CATALOG.items() if it.nvme_disks == 0)


def parts_of(text: str) -> list[tuple[str, str]]:
    msg = email.message_from_string(text)
    assert msg.get_content_type() == "multipart/mixed"
    assert msg["MIME-Version"] == "1.0"
    return [(p.get_content_type(), p.get_payload()) for p in msg.get_payload()]


def test_p5_user_data_is_mime_with_a_raid0_node_config():
    text = node_user_data(instance_type("p5.48xlarge"), nvme_cache=True)
    parts = parts_of(text)
    assert len(parts) == 1
    ctype, body = parts[0]
    assert ctype == NODEADM_CONTENT_TYPE == "application/node.eks.aws"
    doc = yaml.safe_load(body)
    assert doc == {
        "apiVersion": "node.eks.aws/v1alpha1",
        "kind": "NodeConfig",
        "spec": {"instance": {"localStorage": {"strategy": "RAID0"}}},
    }


def test_node_config_has_no_cluster_fields():
    """EKS merges its own part with the cluster details; ours must not set them (it would pin a stale endpoint)."""
    doc = node_config(instance_type("p5.48xlarge"), True)
    assert "cluster" not in doc["spec"]
    assert set(doc["spec"]) == {"instance"}


@pytest.mark.parametrize("name", NVME_TYPES)
def test_raid0_on_every_type_with_nvme_when_the_cache_is_on(name):
    doc = yaml.safe_load(parts_of(node_user_data(instance_type(name), True))[0][1])
    assert doc["spec"]["instance"]["localStorage"]["strategy"] == "RAID0"


@pytest.mark.parametrize("name", NVME_TYPES)
def test_no_user_data_when_the_cache_is_off(name):
    assert node_config(instance_type(name), False) is None
    assert node_user_data(instance_type(name), False) is None


@pytest.mark.parametrize("name", NO_NVME_TYPES)
def test_no_user_data_without_nvme(name):
    assert node_user_data(instance_type(name), True) is None


def test_user_data_is_deterministic_and_base64_round_trips():
    a = node_user_data(instance_type("p5.48xlarge"), True)
    b = node_user_data(instance_type("p5.48xlarge"), True)
    assert a == b
    assert base64.b64decode(encode(a)).decode() == a


def test_mime_ends_with_the_closing_boundary_and_rejects_a_body_containing_it():
    text = mime_multipart([("text/x-shellscript", "#!/bin/bash\necho hi")])
    assert text.endswith(f"--{BOUNDARY}--\n")
    assert parts_of(text)[0] == ("text/x-shellscript", "#!/bin/bash\necho hi\n")
    with pytest.raises(ValueError):
        mime_multipart([("text/plain", f"x --{BOUNDARY} y")])
    with pytest.raises(ValueError):
        mime_multipart([])


def test_raid0_mount_point_and_the_serving_cache_default_on_it():
    """nodeadm mounts the array at <mountPath>/0 (AL2023 setup-local-disks); the default hostPath of the model cache
    must be inside it, or the weights land on the root EBS volume."""
    from components.builders.userdata import LOCAL_STORAGE_MOUNT, RAID0_MOUNT
    from stacks.config.serving import ModelCacheConfig

    assert LOCAL_STORAGE_MOUNT == "/mnt/k8s-disks"
    assert RAID0_MOUNT == "/mnt/k8s-disks/0"
    assert ModelCacheConfig().host_path.startswith(RAID0_MOUNT + "/")
