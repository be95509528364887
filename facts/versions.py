"""Every pinned version of the stack, in one table, each with the place it is published.

Nothing else in the project may write a version, chart reference, repository URL or image tag inline; read it here
(`from facts.versions import pin`; `pin("gpu-operator").version`, `pin("vllm").image_ref`).

How to bump a pin
-----------------
1. Edit the row in `PINS`: the new `version` exactly as the tool takes it (chart version with or without the
   leading "v" as the chart index spells it, image tag, EKS add-on version) and a `source` URL where that exact
   version is published (release page, chart index, registry tag page, AWS docs table). Update the comment if the
   reason for the choice changed.
2. Keep the coupled pins together: the `kubernetes` minor, the AMI `release_version` (it starts with that minor)
   and the EKS add-ons (published per Kubernetes minor) move as one.
3. Run the tests (`python -m pytest tests/unit/test_versions.py` and the whole suite) and the render
   (`python -m tooling.render`), then read the diff of `build/<stack>/` -- every changed Release, image and add-on
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
    # Agent release v1.7.0 (2026-08-04, aws/eks-node-monitoring-agent CHANGELOG: nv-hostengine from the agent image);
    # "v1.7.0-eksbuild.1" is the add-on build pinned beside kube-proxy v1.35.3 in public IaC. Not confirmed from AWS.
    Pin("addon-eks-node-monitoring-agent", "eks-addon", "v1.7.0-eksbuild.1",
        f"{_GH}/aws/eks-node-monitoring-agent/releases/tag/v1.7.0"),
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
    # Karpenter (disagg:nodeProvisioning karpenter), installed by the node provisioning component before any GPU node
    # exists. Release v1.14.1 publishes the chart at the tag without its "v" (aws/karpenter-provider-aws @ v1.14.1
    # hack/release/release.sh: `release "${commit_sha}" "${git_tag#v}"`; hack/release/common.sh publishes
    # `oci://public.ecr.aws/karpenter/karpenter:<version>`). Its CRDs (pkg/apis/crds/) are byte-identical to the
    # NodePool/EC2NodeClass CRDs the conformance test checks our objects against. 1.14.1 over 1.14.0: the cherry-picks
    # of #9507 rework the reserved-capacity offering resolver (pkg/providers/instancetype/offering/), the code path of
    # Capacity Block pools with EFA interfaces (aws/karpenter-provider-aws#9489 reported it in 1.14.0).
    Pin("karpenter", "helm-chart", "1.14.1",
        f"{_GH}/aws/karpenter-provider-aws/releases/tag/v1.14.1",
        chart="oci://public.ecr.aws/karpenter/karpenter"),
    # --- Images -------------------------------------------------------------------------------------------------------
    # NixlConnector selects NIXL backends through kv_connector_extra_config.backends (["LIBFABRIC"] for EFA) since
    # vllm PR #25121 (v0.11); v0.30.0 is a tag confirmed on Docker Hub. It is the CUDA 13 build (needs driver >= 580;
    # the AMI pin ships 580.159.03; "-cu129" tags exist for older drivers). The image bundles the NIXL LIBFABRIC
    # plugin but NOT the EFA libfabric user space (vllm issue #55635, PR #55783 open), and the AMI has none to lend
    # (--minimal): EFA pools run `vllm-efa` below. PyPI carries the same release (vllm==0.30.0, torch==2.13.0), whose
    # argument parser `make check-engine` runs on every rendered command line.
    Pin("vllm", "image", "v0.30.0",
        f"{_GH}/vllm-project/vllm/releases/tag/v0.30.0",
        image="vllm/vllm-openai"),
    # The EFA engine image: `vllm` above plus the aws-efa-installer below (images/vllm-efa/Dockerfile). Built and
    # pushed by .github/workflows/vllm-efa-image.yml as <account>.dkr.ecr.<region>.amazonaws.com/<image>:<version>;
    # the tag names both inputs, so bumping either pin gives a new tag. Stacks reference it by digest in
    # serving.engine.efaImage.
    Pin("vllm-efa", "image", "v0.30.0-efa1.49.0",
        "https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/efa-start.html",
        image="disagg/vllm-efa"),
    # TensorRT-LLM (serving.engine.kind tensorrt-llm): NVIDIA's release container of the 1.2.1 release (PyTorch
    # backend, `trtllm-serve`, NIXL with its UCX plugin, HPC-X OpenMPI). Triton's r26.04-r26.07 TensorRT-LLM backend
    # builds the same release (triton-inference-server/tensorrtllm_backend dockerfile/Dockerfile.triton.trt_llm_backend:
    # TENSORRTLLM_REPO_TAG=release/1.2.1, TENSORRTLLM_VER=1.2.1). PyPI's tensorrt-llm==1.2.1 is a 10 kB stub that points
    # at NVIDIA's own index, so no parser of this release can be installed here: the rendered command lines are checked
    # against the options derived from its source (tests/tools/trtllm_options.json).
    Pin("tensorrt-llm", "image", "1.2.1",
        f"{_GH}/NVIDIA/TensorRT-LLM/releases/tag/v1.2.1",
        image="nvcr.io/nvidia/tensorrt-llm/release"),
    # The TensorRT-LLM EFA engine image: `tensorrt-llm` above plus the aws-efa-installer below and kubectl (the MPI
    # launch agent of multi-node groups), images/tensorrt-llm-efa/Dockerfile. The release image has no libfabric, so
    # NIXL's LIBFABRIC plugin cannot load there (TensorRT-LLM docker/common/install_nixl.sh builds the plugin only
    # against an EFA libfabric). Built and pushed by .github/workflows/tensorrt-llm-efa-image.yml as
    # <account>.dkr.ecr.<region>.amazonaws.com/<image>:<version> (build args from tooling/efa_image.py); stacks
    # reference it by digest in serving.engine.efaImage.
    Pin("tensorrt-llm-efa", "image", "1.2.1-efa1.49.0",
        "https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/efa-start.html",
        image="disagg/tensorrt-llm-efa"),
    # The kubectl of images/tensorrt-llm-efa: OpenMPI's rsh agent of a multi-node TensorRT-LLM group is `kubectl exec`
    # (the pattern of kubernetes-sigs/lws docs/examples/tensorrt-llm: `-mca plm_rsh_agent kubessh`). Same patch as the
    # cluster's AMI (1.35.6); the image is shell-free, so the EFA image copies /bin/kubectl out of it.
    Pin("kubectl", "image", "v1.35.6",
        f"{_GH}/kubernetes/kubernetes/releases/tag/v1.35.6",
        image="registry.k8s.io/kubectl"),
    # The discovery store of TensorRT-LLM's disaggregated orchestrator: context and generation servers register
    # themselves (`--disagg_cluster_uri etcd://...`) and every orchestrator replica watches the same store, so replica
    # changes (KEDA, rollouts) reach all of them (tensorrt_llm/serve/cluster_storage.py create_cluster_storage:
    # `etcd://` -> Etcd3ClusterStorage; `http://` keeps the store inside one orchestrator process, which several
    # replicas cannot share). etcd v3.6 images are distroless.
    Pin("etcd", "image", "v3.6.15",
        f"{_GH}/etcd-io/etcd/releases/tag/v3.6.15",
        image="gcr.io/etcd-development/etcd"),
    # vllm-project/router publishes no versioned image: Docker Hub carries only `nightly` and dated
    # `nightly-YYYYMMDD-<sha>` tags, and the dated ones are garbage-collected after ~15 days (SemiAnalysisAI/InferenceX
    # PR #2143), so a dated pin would stop pulling within weeks. `nightly` is the only durable tag; it is NOT
    # reproducible. For production, build and push your own image from PyPI `vllm-router==0.1.17` and override it.
    Pin("vllm-router", "image", "nightly",
        "https://hub.docker.com/r/vllm/vllm-router/tags",
        image="vllm/vllm-router"),
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
    # Base image of the platform's own helpers: the webhook-readiness gate Jobs and node-exporter's EFA counter
    # sidecar (components/builders/webhook_gates.py, efa_exporter.py). Both run standard-library Python only.
    Pin("platform-python", "image", "3.12.12-slim-bookworm",
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

# sha256 of the one wheel of each `VLLM_ROUTER_PYPI` entry that pip picks for CPython 3.12 on manylinux x86_64
# (the `vllm-router-python` image on the x86_64 system pool), from the same `pip install --dry-run --report`
# (download_info.archive_info.hashes; the vllm-router wheel was downloaded and its sha256 checked against it).
# The router's init container installs with --require-hashes: what runs is byte-for-byte what was resolved, and
# a substituted or re-tagged file fails the install instead of starting. Re-resolve together with VLLM_ROUTER_PYPI.
VLLM_ROUTER_PYPI_SHA256: dict[str, str] = {
    "vllm-router": "85c96bea4d573a49b5a8ae4c72ee3dfe733aba26b6f1ff1256e6142f1f42694d",
    "aiohappyeyeballs": "9243213661e29250eb41368e5daa826fc017156c3b8a11440826b2e3ed376472",
    "aiohttp": "20f085697d7e911f1f73c43ed03fafbed1e7121797e2eb5428efa80398060584",
    "aiosignal": "053243f8b92b990551949e63930a839ff0cf0b0ebbe0597b0f3fb19e1a0fe82e",
    "annotated-doc": "6bc31bbbec6dfaaedc1676dbc11dbda96fe22a2b5c400e9ebad113fec44a9dc6",
    "annotated-types": "f072f4d804ea359e4eaf198b1af7a8b0943881a87f31bb764f8bf219bb9419e0",
    "anyio": "c66ae634e0b8228396b801741beb3294326d4b6102f7bba4041c0dfb58c29026",
    "attrs": "c647aa4a12dfbad9333ca4e71fe62ddc36f4e63b2d260a37a8b83d2f043ac309",
    "certifi": "73191c47aaa79da394e8fee2dbc2ec827432cab56311122c9e47abf79e390f62",
    "charset-normalizer": "3d31298449090ab8d47b7b1b2a555ff73cac7ed438a08b7ac160980c7ebed649",
    "click": "8bb5376d2006950386f8c6427613334a2acadc5f559cb80e638d00b4df957e37",
    "fastapi": "896f48462042bb4f162147eb8fac7e858753dc1f486765709baf105d70e4fc5b",
    "frozenlist": "494a5952b1c597ba44e0e78113a7266e656b9794eec897b19ead706bd7074383",
    "h11": "63cf8bbe7522de3bf65932fda1d9c2772064ffb3dae62d55932da54b31cb6c86",
    "idna": "ab7ae7122974553370f0bdb919e1a960b2cd1bc1ef0276416d896db81c14582c",
    "multidict": "1fb8c1a3480c130c3a6422d5f16f3cad6552bf08c2089dd288ba7134649183b5",
    "opentelemetry-api": "2cbd737377e710ee740d261c94e93fa0f08e6d037c18f17513cc0a2d94479a34",
    "orjson": "bceadfd314bd238f584fc229a4bbaf0e573597e7a026dec5429fbf29fd66c641",
    "propcache": "2814ecd8e818f487bee4b0f921bc4d1c176cc5fc71ac0f072d0fa67eda4ac14b",
    "pydantic": "3f7b347782ab7e4cf4c798496ae3a82787d9f21ec12676a9c564355eeef8daa8",
    "pydantic-core": "c81d98e27d9d9261909dcccab1ba5d6ea1c98b0bb9470e368604614fd1d36ddd",
    "requests": "2a0d60c172f83ac6ab31e4554906c0f3b3588d37b5cb939b1c061f4907e278e0",
    "setproctitle": "4a765e0c80a2453480be27c4fc22ba1c0771867040c5f91e4221940d78a4abfb",
    "starlette": "478c0ab3b4ced6e82719849c118fa406f0278a3499c1a898cd15cd31bdc38ce4",
    "typing-extensions": "481caa481374e813c1b176ada14e97f1f67a4539ce9cfeb3f350d78d6370c2e8",
    "typing-inspection": "bc210535442b39e1bf2805e0c7a17dfd6a4ace760c84c7f7d16245d23a6b1c39",
    "urllib3": "0cf3cae568d36aa9576b28dfb35f11328f1cb974ca7647d9475ebb86c75ac6e3",
    "uvicorn": "505bdb0f318731d45f1f712071fc781a8981f6847a31c902c9f5e652d4f67faf",
    "yarl": "c6f117789d22dce188e5754e8bc65b7e6ebf8cb73963b9fa761f672a5883769d",
}
if set(VLLM_ROUTER_PYPI_SHA256) != set(VLLM_ROUTER_PYPI):  # a package without its hash would fail every router start
    raise ValueError("VLLM_ROUTER_PYPI and VLLM_ROUTER_PYPI_SHA256 must name the same packages")


# The AWS EFA user space for containers, baked into the `vllm-efa` image: libfabric with the EFA provider, rdma-core,
# aws-ofi-nccl. 1.49.0 is the stable version the EC2 "Get started with EFA" guide downloads
# (https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/efa-start.html, 2026-08); it ships libfabric 2.4.0amzn5.0 and
# rdma-core 63.0. sha256 of aws-efa-installer-1.49.0.tar.gz (702,811,844 bytes) as pinned by ai-dynamo/dynamo
# (container/templates/aws.Dockerfile tests, recipes/*/check-efa-userspace.sh) and by an unrelated public container
# install script (miles-efa-install), two independent pins of the same digest; AWS lists the digests of each release on
# https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/efa-verify.html. The image build refuses a tarball whose
# sha256 differs. Bump version, digest and the `vllm-efa` tag together.
AWS_EFA_INSTALLER_VERSION = "1.49.0"
AWS_EFA_INSTALLER_SHA256 = "cf2e9281a2328a243c76f911a490faed43ca0fecfe4733c25e34b2e92a32c309"
AWS_EFA_INSTALLER_URL = f"https://efa-installer.amazonaws.com/aws-efa-installer-{AWS_EFA_INSTALLER_VERSION}.tar.gz"


def pin(key: str) -> Pin:
    """The pin for `key`; KeyError naming the known keys otherwise."""
    try:
        return PINS[key]
    except KeyError:
        raise KeyError(f"no pin {key!r} in facts/versions.py; known keys: {', '.join(sorted(PINS))}") from None
