"""No secret value reaches anything the render writes or prints.

Every render of the session (up and preview, every stack file) decrypts each `secure:` value to a canary
(`--secure-value`), which the program receives as a real Pulumi secret, as the CLI passes a decrypted value.
tests/configs/Pulumi.grove.yaml carries an hfToken and a serving.router.apiKey (Pulumi.trtllm.yaml an apiKey too), so the token's path (config -> Pulumi secret -> Kubernetes
Secret -> secretKeyRef) runs in every test session. The canary must appear in no output, record, manifest, summary,
URN list or log: plain, or base64-encoded as Kubernetes and Docker configs carry it.

The mutations below make the program leak the token the ways a careless change would: the check must catch each,
where it landed; otherwise it proves nothing.
"""

from __future__ import annotations

import base64
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import CANARY, CONFIGS, ROOT, Rendered

TOKEN_STACK = CONFIGS / "Pulumi.grove.yaml"


def _encodings(secret: str) -> dict[str, str]:
    """The secret as it can appear in a file: plain, and base64 at each of the three byte offsets it can start at
    inside a longer encoded string (the 4-character groups made of its bytes alone, so what surrounds it does not
    hide it)."""
    forms = {"plain": secret}
    raw = secret.encode()
    for shift in range(3):
        first, end = (1 if shift else 0), (shift + len(raw)) // 3  # the groups that hold only the secret's bytes
        for name, enc in (("base64", base64.b64encode), ("base64url", base64.urlsafe_b64encode)):
            forms[f"{name}@{shift}"] = enc(b"\0" * shift + raw).decode()[4 * first : 4 * end]
    return forms


def leaks(paths: list[Path], logs: dict[str, str], secret: str = CANARY) -> list[str]:
    """Where the secret shows: `<file or log>: <form>`."""
    found = []
    texts = {str(p): p.read_text(errors="replace") for root in paths for p in ([root] if root.is_file() else sorted(root.rglob("*"))) if p.is_file()}
    texts.update({f"log of {k}": v for k, v in logs.items()})
    for where, text in texts.items():
        for form, needle in _encodings(secret).items():
            if needle and needle in text:
                found.append(f"{where}: {form}")
    return found


def test_the_encodings_find_the_secret_inside_longer_encoded_text():
    for prefix in ("", "a", "ab", "abc:"):
        blob = base64.b64encode(f'{{"auths":{{"x":{{"password":"{prefix}{CANARY}"}}}}}}'.encode()).decode()
        assert leaks([], {"blob": blob}), prefix
    assert not leaks([], {"clean": base64.b64encode(b"nothing to see here, at any alignment").decode()})


def test_no_render_holds_the_secure_value(rendered, previewed):
    problems = []
    for label, runs in (("up", rendered), ("preview", previewed)):
        for name, r in runs.items():
            problems += [f"{label} {name}: {x}" for x in leaks([r.out, r.out.parent / "fake-answers.json"], {name: r.log})]
    assert not problems, "a secret value reached the render:\n" + "\n".join(problems)


def test_the_token_travels_as_a_secret_into_a_kubernetes_secret(rendered):
    """The path the canary check covers: the hfToken stack has the Secret (its data masked as a Pulumi secret, the
    object still valid: tests/conformance validate it) and the pods mount it by reference."""
    r = rendered["grove"]
    (secret,) = [x for x in r.of_type("kubernetes:core/v1:Secret") if x["inputs"]["metadata"]["name"] == "grove-hf-token"]
    assert secret["inputs"]["stringData"] == {"token": "[secret]"}
    refs = [m for m in r.manifests.values() if "'secretName': 'grove-hf-token'" in str(m)]
    assert refs, "no workload reads the token Secret"


@pytest.mark.parametrize("stack", ["grove", "trtllm"])
def test_the_router_api_key_travels_as_a_secret_into_a_kubernetes_secret_the_gate_mounts(rendered, stack):
    """tests/configs/Pulumi.grove.yaml (vllm-router) and Pulumi.trtllm.yaml (TensorRT-LLM's orchestrator) also set
    serving.router.apiKey (`secure:`, rendered as the canary like every secure value, which
    test_no_render_holds_the_secure_value then looks for): the Secret's data is masked and only the router pod's auth
    gate mounts it."""
    r = rendered[stack]
    (secret,) = [x for x in r.of_type("kubernetes:core/v1:Secret") if x["inputs"]["metadata"]["name"] == f"{stack}-router-api-key"]
    assert secret["inputs"]["stringData"] == {"key": "[secret]"}
    refs = [m for m in r.manifests.values() if f"'secretName': '{stack}-router-api-key'" in str(m)]
    assert refs, "no workload reads the router API key Secret"


# --- mutations: the program leaks the token; the check must say where ------------------------------------------------

_MUTATE = r'''
import sys
import pulumi
import stacks.stack

mutation = sys.argv[1]
real_build = stacks.stack.build


def token(cfg):
    return cfg.hf_token.get_secret_value()


def build(cfg):
    if mutation == "env-value":
        # A builder that writes the token into a container's env instead of the mounted Secret file.
        def env_value(args):
            def walk(v):
                if isinstance(v, dict):
                    if v.get("name") == "HF_TOKEN_PATH" and "value" in v:
                        return {"name": "HF_TOKEN", "value": token(cfg)}
                    return {k: walk(x) for k, x in v.items()}
                if isinstance(v, list):
                    return [walk(x) for x in v]
                return v
            return pulumi.ResourceTransformationResult(walk(args.props), args.opts)
        pulumi.runtime.register_stack_transformation(env_value)
    outputs = real_build(cfg)
    if mutation == "plain-export":
        outputs["hfToken"] = token(cfg)
    elif mutation == "unsecret-export":
        outputs["hfToken"] = pulumi.Output.unsecret(pulumi.Output.secret(token(cfg)))
    elif mutation == "configmap":
        import pulumi_kubernetes as k8s
        provider = k8s.Provider("leak-k8s", kubeconfig="{}")
        k8s.core.v1.ConfigMap("leak", metadata={"name": "leak", "namespace": cfg.namespace}, data={"HF_TOKEN": token(cfg)},
                              opts=pulumi.ResourceOptions(provider=provider))
    return outputs


stacks.stack.build = build
from tooling.render import main
sys.exit(main(sys.argv[2:]))
'''


@pytest.mark.parametrize(
    ("mutation", "lands_in"),
    [
        ("plain-export", "resources.json"),  # the case: it passed every test before this check
        ("unsecret-export", "resources.json"),
        ("configmap", "manifests/configmap-grove-leak.yaml"),
        ("env-value", "manifests/podcliqueset-grove-grove.yaml"),
    ],
)
def test_a_leak_of_the_token_is_caught_where_it_lands(tmp_path, mutation, lands_in):
    out = tmp_path / "out"
    args = ["--config", str(TOKEN_STACK), "--out", str(out), "--secure-value", CANARY]
    proc = subprocess.run([sys.executable, "-c", _MUTATE, mutation, *args], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    Rendered(out)  # a whole render, not a crash
    found = leaks([out], {"render": proc.stdout + proc.stderr})
    assert f"{out / lands_in}: plain" in found, f"{mutation}: the leak was not found in {lands_in}: {found}"
