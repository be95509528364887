"""Every pinned version of the stack, in one table, each with the place it is published.

Nothing else in the project may write a version, chart reference, repository URL or image tag inline; read it here
(`from stacks.versions import pin`; `pin("gpu-operator").version`, `pin("vllm").image_ref`).

How to bump a pin
-----------------
1. Edit the row in `PINS`: the new `version` exactly as the tool takes it (chart version with or without the
   leading "v" as the chart index spells it, image tag, EKS add-on version) and a `source` URL where that exact
   version is published (release page, chart index, registry tag page, AWS docs table). Update the comment if the
   reason for the choice changed.
2. Keep the coupled pins together: the `kubernetes` minor, the AMI `release_version` (it starts with that minor)
   and the EKS add-ons (published per Kubernetes minor) move as one; `llm-d-router` and `llm-d-routing-sidecar`
   come from the same release.
3. Run the tests (`python -m pytest tests/unit/test_versions.py` and the whole suite) and the render
   (`python -m stacks.render`), then read the diff of `build/<stack>/` -- every changed Release, image and add-on
   must be one you meant to change. Chart values that moved between versions show up there, not in this table.
4. Read the upstream release notes for CRD changes: Helm never upgrades CRDs in a chart's `crds/` directory.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

KINDS = ("kubernetes", "ami", "eks-addon", "helm-chart", "image")


@dataclass(frozen=True)
class Pin:
    key: str  # table key, e.g. "gpu-operator"
    kind: str  # "kubernetes" | "ami" | "eks-addon" | "helm-chart" | "image"
    version: str  # exactly as the tool expects it (chart version, image tag, addon version)
    source: str  # link to where this version is published / documented
    chart: str | None = None  # helm: chart name, or full "oci://..." reference for OCI charts
    repository: str | None = None  # helm: https repo URL (None for OCI)
    image: str | None = None  # image: repository without tag

    def __post_init__(self) -> None:
        problems = []
        if self.kind not in KINDS:
            problems.append(f"kind {self.kind!r} is not one of {', '.join(KINDS)}")
        if not self.version or self.version != self.version.strip() or re.search(r"\s", self.version):
            problems.append(f"version {self.version!r} must be a non-empty token")
        if self.version.lower() == "latest":
            problems.append("'latest' is not a pin")
        if not re.match(r"^https?://", self.source):
            problems.append("source must be an http(s) URL")
        if self.kind == "helm-chart":
            if not self.chart:
                problems.append("helm pins need a chart")
            elif self.chart.startswith("oci://") and self.repository is not None:
                problems.append("OCI charts carry the registry in `chart`; repository must be None")
            elif not self.chart.startswith("oci://") and not (self.repository or "").startswith("https://"):
                problems.append("a chart name needs an https repository")
        elif self.chart is not None or self.repository is not None:
            problems.append("only helm pins have chart/repository")
        if self.kind == "image":
            if not self.image or ":" in self.image.rsplit("/", 1)[-1] or "@" in self.image:
                problems.append("image pins need `image` without tag or digest")
        elif self.image is not None:
            problems.append("only image pins have an image")
        if problems:
            raise ValueError(f"pin {self.key}: " + "; ".join(problems))

    @property
    def image_ref(self) -> str:
        if self.kind != "image" or self.image is None:
            raise ValueError(f"pin {self.key} is a {self.kind} pin, not an image")
        return f"{self.image}:{self.version}"


_GH = "https://github.com"

_PINS = (
    # --- Cluster ------------------------------------------------------------------------------------------------------
    # 1.35: EKS GA 2026-01-28, standard support until 2027-03-27, so a stack created in late 2026 is not billed for
    # extended support (1.33 left standard support 2026-07-29, 1.34 leaves it 2026-12-02). Not 1.36: KEDA 2.20
    # (the current chart) is tested on Kubernetes 1.33-1.35 only (https://keda.sh/docs/2.20/operate/cluster/).
    # kubernetes-validate ships 1.35 schemas (tests check it); >= 1.34 keeps the EFA DRA driver option open.
    Pin("kubernetes", "kubernetes", "1.35",
        "https://docs.aws.amazon.com/eks/latest/userguide/kubernetes-versions-standard.html"),
    # MNG `release_version` = "<k8s patch>-<AMI date>". Release v20260724 only changed docs in the repo; its k8s 1.35
    # patch 1.35.6 is the one the v20260714 CHANGELOG lists (1.35.6-20260714), and "1.35.6-20260724" is what MNGs
    # resolved to in public IaC at that time. The AL2023 NVIDIA AMI of this release ships driver 580.159.03 (CUDA 13
    # capable), nvidia-container-toolkit 1.19.1, EFA 3.1.0 (CHANGELOG v20260714).
    Pin("eks-al2023-nvidia-ami", "ami", "1.35.6-20260724",
        f"{_GH}/awslabs/amazon-eks-ami/releases/tag/v20260724"),
    # The standard (CPU) AL2023 AMI of the system node group. Every variant of an amazon-eks-ami release shares the
    # release version, so this moves together with `eks-al2023-nvidia-ami`.
    Pin("eks-al2023-ami", "ami", "1.35.6-20260724",
        f"{_GH}/awslabs/amazon-eks-ami/releases/tag/v20260724"),
    # --- EKS managed add-ons for Kubernetes 1.35 ------------------------------------------------------------------
    # VPC CNI >= 1.18.5 is required for efa-only network interfaces (EKS node-efa docs). The AWS docs table for 1.35
    # could not be read offline; v1.22.4-eksbuild.3 is the build EKS resolved for 1.31-1.36 clusters in public IaC
    # (Sept 2026). Not confirmed from an AWS page.
    Pin("addon-vpc-cni", "eks-addon", "v1.22.4-eksbuild.3",
        f"{_GH}/aws/amazon-vpc-cni-k8s/releases/tag/v1.22.4"),
    # AWS docs "CoreDNS versions" table, row 1.35 (read from the docs' markdown rendition).
    Pin("addon-coredns", "eks-addon", "v1.14.3-eksbuild.3",
        "https://docs.aws.amazon.com/eks/latest/userguide/managing-coredns.html"),
    # AWS docs "kube-proxy versions" table, row 1.35; kube-proxy must match the control-plane minor.
    Pin("addon-kube-proxy", "eks-addon", "v1.35.3-eksbuild.13",
        "https://docs.aws.amazon.com/eks/latest/userguide/managing-kube-proxy.html"),
    # No per-version table in the AWS docs; observed on 1.35 and 1.36 clusters in public IaC. Not confirmed from AWS.
    Pin("addon-eks-pod-identity-agent", "eks-addon", "v1.3.10-eksbuild.3",
        f"{_GH}/aws/eks-pod-identity-agent/releases"),
    # Observed as the add-on build on 1.35/1.36 clusters in public IaC (Sept 2026). Not confirmed from AWS.
    Pin("addon-aws-ebs-csi-driver", "eks-addon", "v1.66.0-eksbuild.1",
        f"{_GH}/kubernetes-sigs/aws-ebs-csi-driver/releases/tag/v1.66.0"),
    # --- Helm charts --------------------------------------------------------------------------------------------------
    # Chart version carries the "v" (NGC index spelling); previous release v26.3.3.
    Pin("gpu-operator", "helm-chart", "v26.7.0",
        f"{_GH}/NVIDIA/gpu-operator/releases/tag/v26.7.0",
        chart="gpu-operator", repository="https://helm.ngc.nvidia.com/nvidia"),
    # ConnectX/MOFED operator: does not drive AWS EFA; pinned only for the optional, off-by-default component.
    Pin("network-operator", "helm-chart", "26.4.1",
        f"{_GH}/Mellanox/network-operator/releases/tag/v26.4.1",
        chart="network-operator", repository="https://helm.ngc.nvidia.com/nvidia"),
    # Chart v0.5.30 (appVersion/image v0.5.20); chart version keeps the "v" as the eks-charts index spells it.
    Pin("aws-efa-k8s-device-plugin", "helm-chart", "v0.5.30",
        "https://aws.github.io/eks-charts/index.yaml",
        chart="aws-efa-k8s-device-plugin", repository="https://aws.github.io/eks-charts"),
    # v0.17.0 is the newest non-retracted release (the v0.20.x tags were retracted upstream).
    Pin("kai-scheduler", "helm-chart", "v0.17.0",
        f"{_GH}/kai-scheduler/KAI-Scheduler/releases/tag/v0.17.0",
        chart="oci://ghcr.io/kai-scheduler/kai-scheduler/kai-scheduler"),
    Pin("lws", "helm-chart", "0.10.0",
        f"{_GH}/kubernetes-sigs/lws/releases/tag/v0.10.0",
        chart="oci://registry.k8s.io/lws/charts/lws"),
    # Newest non-rc release (v0.1.0-alpha.12-rc1 exists).
    Pin("grove", "helm-chart", "v0.1.0-alpha.11",
        f"{_GH}/ai-dynamo/grove/releases/tag/v0.1.0-alpha.11",
        chart="oci://ghcr.io/ai-dynamo/grove/grove-charts"),
    # Chart 3.13.1 (app 0.8.1) is the newest chart in the index (2026-06-11); app v0.9.0 has no chart yet.
    Pin("metrics-server", "helm-chart", "3.13.1",
        f"{_GH}/kubernetes-sigs/metrics-server/releases/tag/metrics-server-helm-chart-3.13.1",
        chart="metrics-server", repository="https://kubernetes-sigs.github.io/metrics-server/"),
    # Chart 3.5.0 = controller v3.5.0, newest in the eks-charts index (2026-08-03).
    Pin("aws-load-balancer-controller", "helm-chart", "3.5.0",
        "https://aws.github.io/eks-charts/index.yaml",
        chart="aws-load-balancer-controller", repository="https://aws.github.io/eks-charts"),
    # Chart 88.5.3 (prometheus-operator v0.93.1), kubeVersion >= 1.25.
    Pin("kube-prometheus-stack", "helm-chart", "88.5.3",
        f"{_GH}/prometheus-community/helm-charts/releases/tag/kube-prometheus-stack-88.5.3",
        chart="kube-prometheus-stack", repository="https://prometheus-community.github.io/helm-charts"),
    # Chart 2.20.2 = KEDA 2.20.2, tested on Kubernetes 1.33-1.35.
    Pin("keda", "helm-chart", "2.20.2",
        f"{_GH}/kedacore/charts/releases/tag/v2.20.2",
        chart="keda", repository="https://kedacore.github.io/charts"),
    # --- Images -------------------------------------------------------------------------------------------------------
    # NixlConnector selects NIXL backends through kv_connector_extra_config.backends (["LIBFABRIC"] for EFA) since
    # vllm PR #25121 (v0.11); v0.30.0 is a tag confirmed on Docker Hub. It is the CUDA 13 build (needs driver >= 580;
    # the AMI pin ships 580.159.03; "-cu129" tags exist for older drivers). The image bundles the NIXL LIBFABRIC
    # plugin but NOT the EFA libfabric user space (vllm issue #55635, PR #55783 open): mount /opt/amazon/efa from the
    # host or use a derived image, as the serving config's `image` field says.
    Pin("vllm", "image", "v0.30.0",
        f"{_GH}/vllm-project/vllm/releases/tag/v0.30.0",
        image="vllm/vllm-openai"),
    # vllm-project/router publishes no versioned image: Docker Hub carries only `nightly` and dated
    # `nightly-YYYYMMDD-<sha>` tags, and the dated ones are garbage-collected after ~15 days (SemiAnalysisAI/InferenceX
    # PR #2143), so a dated pin would stop pulling within weeks. `nightly` is the only durable tag; it is NOT
    # reproducible. For production, build and push your own image from PyPI `vllm-router==0.1.17` and override it.
    Pin("vllm-router", "image", "nightly",
        "https://hub.docker.com/r/vllm/vllm-router/tags",
        image="vllm/vllm-router"),
    # Images are pushed by .github/workflows/ci-release.yaml on the v0.10.0 tag as <repo>-endpoint-picker and
    # <repo>-disagg-sidecar; EPP and sidecar must come from the same release.
    Pin("llm-d-router", "image", "v0.10.0",
        f"{_GH}/llm-d/llm-d-router/releases/tag/v0.10.0",
        image="ghcr.io/llm-d/llm-d-router-endpoint-picker"),
    Pin("llm-d-routing-sidecar", "image", "v0.10.0",
        f"{_GH}/llm-d/llm-d-router/releases/tag/v0.10.0",
        image="ghcr.io/llm-d/llm-d-router-disagg-sidecar"),
    # RDMA shared device plugin deployed by the Network Operator's NicClusterPolicy. Its tag is the operator
    # release's ("network-operator-v<chart version>", hack/release.yaml): move it together with `network-operator`.
    Pin("rdma-shared-device-plugin", "image", "network-operator-v26.4.1",
        f"{_GH}/Mellanox/network-operator/blob/v26.4.1/hack/release.yaml",
        image="nvcr.io/nvidia/mellanox/k8s-rdma-shared-dev-plugin"),
    # Base image of the vllm-router pods. vllm-project/router publishes no versioned image (only `nightly` and dated
    # nightlies deleted after ~15 days, see `vllm-router` above), so the router runs from its PyPI wheel
    # (`VLLM_ROUTER_PYPI` below, installed by an init container into an emptyDir) on this pinned Python image: the
    # same inputs give the same router on every start. The wheel is abi3 (cp38+) manylinux_2_28, which Debian
    # bookworm's glibc 2.36 satisfies.
    Pin("vllm-router-python", "image", "3.12.12-slim-bookworm",
        "https://hub.docker.com/_/python/tags?name=3.12.12-slim-bookworm",
        image="python"),
)

PINS: dict[str, Pin] = {p.key: p for p in _PINS}
if len(PINS) != len(_PINS):  # a duplicated key would silently shadow the other row
    raise ValueError("duplicate key in the versions table")


# vllm-router from PyPI with its whole dependency closure, exact versions, as resolved for CPython 3.12 on
# manylinux x86_64 (`pip install --dry-run --report` of vllm-router==0.1.17, 2026-11). Installed with --no-deps
# from this list so no transitive version floats. Bump vllm-router and re-resolve the rest together.
# Sources: https://pypi.org/project/vllm-router/0.1.17/ and each package's PyPI page.
VLLM_ROUTER_PYPI: dict[str, str] = {
    "vllm-router": "0.1.17",
    "aiohappyeyeballs": "2.7.1",
    "aiohttp": "3.14.5",
    "aiosignal": "1.4.0",
    "annotated-doc": "0.0.7",
    "annotated-types": "0.8.0",
    "anyio": "4.16.0",
    "attrs": "26.1.0",
    "certifi": "2026.10.18",
    "charset-normalizer": "3.5.2",
    "click": "8.5.1",
    "fastapi": "0.165.0",
    "frozenlist": "1.8.0",
    "h11": "0.16.0",
    "idna": "3.20",
    "multidict": "7.2.1",
    "opentelemetry-api": "1.45.2",
    "orjson": "3.13.0",
    "propcache": "0.5.4",
    "pydantic": "2.14.3",
    "pydantic-core": "2.50.4",
    "requests": "2.34.2",
    "setproctitle": "1.3.8",
    "starlette": "1.10.0",
    "typing-extensions": "4.16.0",
    "typing-inspection": "0.4.5",
    "urllib3": "2.8.0",
    "uvicorn": "0.54.0",
    "yarl": "1.25.1",
}

def pin(key: str) -> Pin:
    """The pin for `key`; KeyError naming the known keys otherwise."""
    try:
        return PINS[key]
    except KeyError:
        raise KeyError(f"no pin {key!r} in stacks/versions.py; known keys: {', '.join(sorted(PINS))}") from None
