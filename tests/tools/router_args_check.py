"""Parse rendered vllm-router command lines with vllm-router's own parser, from its pinned wheel.

Runs inside the router's virtualenv (the test builds .venv-router from the wheel pinned by sha256 in
facts/versions.py VLLM_ROUTER_PYPI), imports nothing of this project, starts no server:

    .venv-router/bin/python tests/tools/router_args_check.py ARGV_JSON

ARGV_JSON is a JSON list of argv lists. For each: the argparse parser `vllm-router` builds
(RouterArgs.add_cli_args, as vllm_router/launch_router.py parse_router_args), RouterArgs.from_cli_args,
_validate_router_args (what launch_router calls before starting), and Router.from_args, which converts the policy
names and hands the config to the Rust router without starting it. Prints one JSON object per argv with what the
router understood (mode, selectors, policies, discovery), so the caller compares it with what was meant.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys

from vllm_router.router import Router
from vllm_router.router_args import RouterArgs


def parse(argv: list[str]) -> dict:
    parser = argparse.ArgumentParser(prog="vllm-router")
    RouterArgs.add_cli_args(parser, use_router_prefix=False)
    ra = RouterArgs.from_cli_args(parser.parse_args(argv), use_router_prefix=False)
    ra._validate_router_args()
    understood = {
        "pd": ra.vllm_pd_disaggregation,
        "service_discovery": ra.service_discovery,
        "namespace": ra.service_discovery_namespace,
        "port": ra.service_discovery_port,
        "selector": ra.selector,
        "prefill_selector": ra.prefill_selector,
        "decode_selector": ra.decode_selector,
        "policy": ra.policy,
        "prefill_policy": ra.prefill_policy,
        "decode_policy": ra.decode_policy,
        "host": ra.host,
        "listen_port": ra.port,
        "prometheus_port": ra.prometheus_port,
    }
    Router.from_args(ra)  # converts the policy names (it rewrites them on `ra`, hence read first)
    return understood


def main(path: str) -> int:
    try:
        with contextlib.redirect_stderr(io.StringIO()):
            parse(["--no-such-router-flag"])
    except SystemExit as e:
        if e.code == 0:
            return 1
    else:
        print("vllm-router accepted an unknown flag; this check would prove nothing", file=sys.stderr)
        return 1
    print(json.dumps([parse(argv) for argv in json.loads(open(path).read())]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1]))
