"""Write a planned layout as a stack config file (`Pulumi.<stack>.yaml`) that `python -m tooling.render` renders.

The planner owns `disagg:gpuPools` and `disagg:serving` (model, roles, autoscaling); everything else comes from a
base stack file when one is given (`--base Pulumi.prod.yaml`), otherwise from a minimal template whose public
endpoint CIDR is the documentation range 198.51.100.0/24 (replace it before `pulumi up`). The scenario it was
sized for travels with the stack as the AWS tag `disagg.io/sized-for`, so the render's summary (and every AWS
resource, e.g. in Cost Explorer) can tell what the layout was planned to serve. The file is validated by the
project's own rules (`stacks.config.parse`) before it is written.
"""

from __future__ import annotations

import copy
import math
import re
from pathlib import Path
from typing import Any

import yaml

from facts.catalog import instance_type
from facts.models import lookup
from tooling.sizing.planner import Layout, PlanResult, RoleLayout, Scenario

SIZED_FOR_TAG = "disagg.io/sized-for"
_WEIGHT_DTYPE = {"bf16": "bf16", "fp8": "fp8", "fp8_block": "fp8", "mxfp4": "fp4"}
_TEMPLATE = {
    "region": "us-east-1",
    "availabilityZones": ["us-east-1a", "us-east-1b"],
    "cluster": {"publicAccessCidrs": ["198.51.100.0/24"]},
    "platform": {"workloadApi": "lws"},
}


# --- the sized-for tag -------------------------------------------------------------------------------------------


def sized_for(sc: Scenario, rate: float) -> str:
    """`isl=4096 osl=512 rate=10 ttft-ms=1000 itl-ms=40 p=90 kv=bf16` (AWS tag values allow letters, digits,
    spaces and + - = . _ : / @, at most 256 characters)."""
    parts = [f"isl={sc.isl}", f"osl={sc.osl}", f"rate={rate:.4g}", f"ttft-ms={sc.ttft_ms:g}", f"itl-ms={sc.itl_ms:g}", f"p={sc.percentile:g}"]
    if sc.isl_tail:
        parts.append(f"isl-tail={sc.isl_tail}")
    if sc.kv != "bf16":
        parts.append(f"kv={sc.kv}")
    if sc.weights in ("fp8", "fp8_block"):
        parts.append(f"weights={sc.weights}")
    return " ".join(parts)


_TAG_FIELDS = {"isl": int, "osl": int, "rate": float, "ttft-ms": float, "itl-ms": float, "p": float, "isl-tail": int, "kv": str, "weights": str}


def parse_sized_for(value: str) -> dict[str, Any]:
    """The tag back into its fields; ValueError naming what is wrong."""
    out: dict[str, Any] = {}
    for part in value.split():
        key, sep, raw = part.partition("=")
        if not sep or key not in _TAG_FIELDS:
            raise ValueError(f"{part!r} is not one of {', '.join(f'{k}=...' for k in _TAG_FIELDS)}")
        try:
            out[key] = _TAG_FIELDS[key](raw)
        except ValueError:
            raise ValueError(f"{key}={raw!r} is not a {_TAG_FIELDS[key].__name__}") from None
    missing = [k for k in ("isl", "osl", "rate", "ttft-ms", "itl-ms") if k not in out]
    if missing:
        raise ValueError(f"missing {', '.join(missing)}")
    return out


# --- building the values -------------------------------------------------------------------------------------------


def _pool(name: str, role: RoleLayout, zone: str) -> dict[str, Any]:
    it = instance_type(role.instance)
    pool: dict[str, Any] = {"name": name, "role": "prefill" if role.role == "prefill" else "decode", "instanceType": it.name, "nodes": role.nodes}
    if it.supports_efa:
        pool["availabilityZones"] = [zone]  # EFA and the P/D transfer stay in one AZ
    return pool


def _role(role: RoleLayout) -> dict[str, Any]:
    out: dict[str, Any] = {"tensorParallel": role.tp, "replicas": role.filled}
    if role.pp > 1:
        out["pipelineParallel"] = role.pp
    auto: dict[str, Any] = {"minReplicas": role.replicas, "maxReplicas": role.filled}
    if not math.isnan(role.keda_target):
        auto["target"] = float(role.keda_target)
    out["autoscaling"] = auto
    return out


def _max_model_len(sc: Scenario, layout: Layout) -> int:
    """Long enough for the workload (its longest prompt plus the output), a power of two from 32768, within the
    model's window and what one replica's KV cache holds (vLLM refuses to start otherwise)."""
    need = (sc.isl_tail or sc.isl) + sc.osl
    length = max(32768, 2 ** math.ceil(math.log2(need)))
    if sc.model.max_position:
        length = min(length, sc.model.max_position)
    cap = min(r.kv_tokens for r in layout.roles)
    return max(need, min(length, cap))


def placeholder_efa_image(region: str) -> str:
    """Where the vllm-efa-image workflow pushes the EFA engine image, in AWS's documentation account: the offline render
    takes it, and `pulumi preview` refuses it until the user sets the image they built (stacks/preflight.py)."""
    from stacks.preflight import DOCUMENTATION_ACCOUNT
    from facts.versions import pin

    p = pin("vllm-efa")
    return f"{DOCUMENTATION_ACCOUNT}.dkr.ecr.{region}.amazonaws.com/{p.image}:{p.version}"


def stack_values(
    result: PlanResult, layout: Layout, base: dict[str, Any] | None = None, efa_image: str | None = None,
    region: str | None = None,
) -> dict[str, Any]:
    """The `disagg:` values (without the namespace) of a stack running `layout`. EFA pools run `efa_image` (else the
    base's, else the placeholder of `placeholder_efa_image`)."""
    if layout.kind != "disagg":
        raise ValueError("only disaggregated layouts can be written: the stack deploys prefill and decode roles")
    sc = result.scenario
    values = copy.deepcopy(base) if base else copy.deepcopy(_TEMPLATE)
    if region:
        values["region"] = region
    zone = values.get("availabilityZones", _TEMPLATE["availabilityZones"])[0]
    pre, dec = layout.role("prefill"), layout.role("decode")
    values["gpuPools"] = [_pool("prefill", pre, zone), _pool("decode", dec, zone)]
    serving = dict(values.get("serving") or {})
    model: dict[str, Any] = {"id": sc.model_id, "weightDtype": _WEIGHT_DTYPE[sc.weights], "maxModelLen": _max_model_len(sc, layout)}
    old = serving.get("model") or {}
    if old.get("servedName") and old.get("id") == sc.model_id:
        model["servedName"] = old["servedName"]
    if lookup(sc.model_id) is None:
        # Not in the sizing catalog, so the config cannot resolve it: write the count the planner used.
        model["parametersBillions"] = round(sc.model.params_billions, 2)
    serving["model"] = model
    engine = dict(serving.get("engine") or {})
    args = [a for a in engine.get("extraArgs", []) if not a.startswith("--kv-cache-dtype")]
    if sc.kv == "fp8":
        args.append("--kv-cache-dtype=fp8")
    if args:
        engine["extraArgs"] = args
    else:
        engine.pop("extraArgs", None)
    if any(instance_type(r.instance).supports_efa for r in (pre, dec)):
        engine["efaImage"] = efa_image or engine.get("efaImage") or placeholder_efa_image(values.get("region", _TEMPLATE["region"]))
    if engine:
        serving["engine"] = engine
    else:
        serving.pop("engine", None)
    serving["prefill"] = _role(pre)
    serving["decode"] = _role(dec)
    values["serving"] = serving
    tags = dict(values.get("tags") or {})
    tags[SIZED_FOR_TAG] = sized_for(sc, result.rate)
    values["tags"] = tags
    return values


def header(result: PlanResult, layout: Layout) -> str:
    """Comment lines the file starts with: what was planned and what the planner predicts."""
    sc = result.scenario
    pre, dec = layout.role("prefill"), layout.role("decode")
    lines = [
        "Written by `python -m tooling.sizing plan` (docs/sizing.md). Re-run the planner rather than editing the sizing by hand.",
        f"Scenario: {sc.describe()}.",
        f"Prefill: {pre.label()}, predicted TTFT p{sc.percentile:g} {layout.ttft_p_ms:.0f} ms "
        f"(incl. KV transfer {layout.kv_transfer_ms:.1f} ms over {layout.kv_pod_gbps:.0f} Gbps).",
        f"Decode: {dec.label()}, predicted ITL p{sc.percentile:g} {dec.itl_p_ms:.1f} ms at {dec.batch:.0f} sequences per replica.",
        f"GPU pools ${layout.usd_per_hour:,.2f}/h On-Demand, ${layout.usd_per_mtok:.2f} per million output tokens, "
        f"{layout.tok_s_per_gpu:.0f} output tok/s per GPU.",
        "Autoscaling: minReplicas is what the rate needs, maxReplicas what the paid-for nodes hold; targets come from the SLOs.",
    ]
    return "".join(f"# {line}\n" for line in lines)


def render_file(values: dict[str, Any], base_doc: dict[str, Any] | None, comment: str) -> str:
    """The YAML document: the base file's non-`disagg:` keys (e.g. `aws:region`), then every `disagg:` key."""
    config: dict[str, Any] = {}
    for k, v in ((base_doc or {}).get("config") or {}).items():
        if not k.startswith("disagg:") and ":" in k:
            config[k] = v
    config.setdefault("aws:region", values.get("region", "us-east-1"))
    for k, v in values.items():
        config[f"disagg:{k}"] = v
    return comment + yaml.safe_dump({"config": config}, sort_keys=False, default_flow_style=False, width=120)


def load_base(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the `disagg:` values of a stack file, the whole document)."""
    doc = yaml.safe_load(path.read_text()) or {}
    values = {}
    for k, v in (doc.get("config") or {}).items():
        if k.startswith("disagg:"):
            values[k.split(":", 1)[1]] = v
        elif ":" not in k:
            values[k] = v
    return values, doc


def validate(values: dict[str, Any], stack: str) -> None:
    """Run the project's config rules on the values (raises stacks.config.ConfigError with every problem)."""
    from stacks.config import parse

    parse(values, stack=stack)


def stack_name(path: Path) -> str:
    m = re.match(r"^Pulumi\.(.+)\.ya?ml$", path.name)
    return m.group(1) if m else path.stem
