"""The versions table: every pin present, well-formed and sourced."""

import dataclasses
import pathlib
import re

import pytest

from facts.versions import KINDS, PINS, Pin, pin

REQUIRED = {
    "kubernetes": "kubernetes",
    "eks-al2023-nvidia-ami": "ami",
    "addon-vpc-cni": "eks-addon",
    "addon-coredns": "eks-addon",
    "addon-kube-proxy": "eks-addon",
    "addon-eks-pod-identity-agent": "eks-addon",
    "addon-aws-ebs-csi-driver": "eks-addon",
    "gpu-operator": "helm-chart",
    "network-operator": "helm-chart",
    "aws-efa-k8s-device-plugin": "helm-chart",
    "kai-scheduler": "helm-chart",
    "lws": "helm-chart",
    "grove": "helm-chart",
    "metrics-server": "helm-chart",
    "aws-load-balancer-controller": "helm-chart",
    "kube-prometheus-stack": "helm-chart",
    "keda": "helm-chart",
    "vllm": "image",
    "vllm-router": "image",
}


@pytest.mark.parametrize("key,kind", REQUIRED.items())
def test_required_pins_exist_with_their_kind(key, kind):
    assert pin(key).kind == kind
    assert pin(key).key == key


@pytest.mark.parametrize("p", PINS.values(), ids=list(PINS))
def test_every_pin_is_well_formed(p: Pin):
    assert p.kind in KINDS
    assert p.version and not re.search(r"\s", p.version)
    assert re.match(r"^https?://\S+$", p.source)


@pytest.mark.parametrize("p", [p for p in PINS.values() if p.kind == "helm-chart"], ids=lambda p: p.key)
def test_helm_pins_have_a_chart(p: Pin):
    assert p.chart
    if p.chart.startswith("oci://"):
        assert p.repository is None
    else:
        assert p.repository and p.repository.startswith("https://")
    assert p.image is None


@pytest.mark.parametrize("p", [p for p in PINS.values() if p.kind == "image"], ids=lambda p: p.key)
def test_image_pins_build_image_ref(p: Pin):
    assert p.image_ref == f"{p.image}:{p.version}"
    assert p.image_ref.count(":") == 1 + p.image.count(":")  # exactly one tag separator


@pytest.mark.parametrize("p", [p for p in PINS.values() if p.kind != "image"], ids=lambda p: p.key)
def test_image_ref_is_refused_for_non_image_pins(p: Pin):
    with pytest.raises(ValueError, match=p.key):
        p.image_ref


def test_no_latest_anywhere():
    for p in PINS.values():
        assert "latest" not in p.version.lower(), p.key
        if p.kind == "image":
            assert not p.image_ref.lower().endswith(":latest"), p.key


def test_kubernetes_version_is_a_minor_with_validation_schemas():
    version = pin("kubernetes").version
    assert re.fullmatch(r"1\.\d+", version)
    import kubernetes_validate

    schemas = pathlib.Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema"
    assert (schemas / f"v{version}.0-standalone-strict").exists() or (schemas / f"v{version}.0-local").exists()


def test_ami_release_version_matches_the_kubernetes_minor():
    ami = pin("eks-al2023-nvidia-ami").version
    assert re.fullmatch(r"1\.\d+\.\d+-\d{8}", ami)
    assert ami.startswith(pin("kubernetes").version + ".")


@pytest.mark.parametrize("key", [k for k, kind in REQUIRED.items() if kind == "eks-addon"])
def test_addon_versions_use_the_eksbuild_format(key):
    assert re.fullmatch(r"v\d+\.\d+\.\d+-eksbuild\.\d+", pin(key).version)


def test_kube_proxy_matches_the_control_plane_minor():
    assert pin("addon-kube-proxy").version.startswith(f"v{pin('kubernetes').version}.")


def test_vpc_cni_supports_efa_only_interfaces():
    major, minor, patch = map(int, re.match(r"v(\d+)\.(\d+)\.(\d+)", pin("addon-vpc-cni").version).groups())
    assert (major, minor, patch) >= (1, 18, 5)


@pytest.mark.parametrize(
    "key,chart,repository,version",
    [
        ("gpu-operator", "gpu-operator", "https://helm.ngc.nvidia.com/nvidia", "v26.7.0"),
        ("network-operator", "network-operator", "https://helm.ngc.nvidia.com/nvidia", "26.4.1"),
        ("aws-efa-k8s-device-plugin", "aws-efa-k8s-device-plugin", "https://aws.github.io/eks-charts", "v0.5.30"),
        ("kai-scheduler", "oci://ghcr.io/kai-scheduler/kai-scheduler/kai-scheduler", None, "v0.17.0"),
        ("lws", "oci://registry.k8s.io/lws/charts/lws", None, "0.10.0"),
        ("grove", "oci://ghcr.io/ai-dynamo/grove/grove-charts", None, "v0.1.0-alpha.11"),
    ],
)
def test_platform_charts_match_the_verified_releases(key, chart, repository, version):
    p = pin(key)
    assert (p.chart, p.repository, p.version) == (chart, repository, version)


def test_vllm_is_a_release_tag():
    assert pin("vllm").image == "vllm/vllm-openai"
    assert re.fullmatch(r"v\d+\.\d+\.\d+", pin("vllm").version)


def test_unknown_key_lists_the_known_keys():
    with pytest.raises(KeyError) as err:
        pin("gpu-operater")
    message = str(err.value)
    assert "gpu-operater" in message and "gpu-operator" in message and "vllm" in message


def test_pins_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        pin("vllm").version = "v0.0.1"  # type: ignore[misc]


@pytest.mark.parametrize(
    "kwargs,fragment",
    [
        (dict(kind="helm-chart", version="1.0.0", source="https://x"), "need a chart"),
        (dict(kind="helm-chart", version="1.0.0", source="https://x", chart="c"), "https repository"),
        (dict(kind="helm-chart", version="1", source="https://x", chart="oci://r/c", repository="https://r"), "OCI"),
        (dict(kind="image", version="latest", source="https://x", image="a/b"), "latest"),
        (dict(kind="image", version="v1", source="https://x", image="a/b:v1"), "without tag"),
        (dict(kind="image", version="v1", source="file:///x", image="a/b"), "http"),
        (dict(kind="chart", version="v1", source="https://x"), "kind"),
        (dict(kind="eks-addon", version="", source="https://x"), "non-empty"),
    ],
)
def test_malformed_pins_are_rejected(kwargs, fragment):
    with pytest.raises(ValueError, match=fragment):
        Pin(key="bad", **kwargs)
