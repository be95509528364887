"""Parse every rendered engine command line with vLLM's own CLI parser, from the pinned vLLM wheel.

Runs inside .venv-vllm (`make check-engine` builds it: torch==2.13.0 CPU, vllm==0.30.0 --no-deps, and the
pure-Python requirements vLLM's wheel declares, minus its GPU kernel packages), so it imports nothing of this project:

    .venv-vllm/bin/python tests/tools/vllm_argv_check.py build/engine-check/engine-commands.json

For each engine container it does what `vllm serve ARGV` does before it loads a model (vllm
entrypoints/cli/main.py): the `serve` subparser of a FlexibleArgumentParser, `ServeSubcommand.validate`, and
`AsyncEngineArgs.from_cli_args`; then it checks that `--kv-transfer-config` became a KVTransferConfig whose connector
vLLM registers. It proves the parser is strict first: an unknown flag must be refused. Exit 1 on any failure, with
the stack, object and argv.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys

# The wheel is the CUDA build; on a machine without a GPU the platform must be named (vllm platforms/__init__.py:
# "Native CPU-only CI jobs reuse an accelerator wheel").
os.environ.setdefault("VLLM_TARGET_DEVICE", "cpu")
os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")


def serve_parser():
    from vllm.entrypoints.cli.serve import ServeSubcommand
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    parser = FlexibleArgumentParser(description="vLLM CLI")
    subparsers = parser.add_subparsers(required=False, dest="subparser")
    cmd = ServeSubcommand()
    cmd.subparser_init(subparsers)
    return parser, cmd


def parse(parser, cmd, argv: list[str]):
    args = parser.parse_args(["serve", *argv])
    cmd.validate(args)
    return args


def refuses(parser, cmd, argv: list[str]) -> bool:
    try:
        with contextlib.redirect_stderr(io.StringIO()):
            parse(parser, cmd, argv)
    except SystemExit as e:
        return e.code != 0
    except Exception:
        return True
    return False


def main(argv: list[str]) -> int:
    import vllm
    from vllm.config.kv_transfer import KVTransferConfig
    from vllm.distributed.kv_transfer.kv_connector.factory import KVConnectorFactory
    from vllm.engine.arg_utils import AsyncEngineArgs

    records = [r for r in json.loads(open(argv[0]).read()) if r.get("engine_argv") is not None]
    parser, cmd = serve_parser()
    if not refuses(parser, cmd, ["some/model", "--no-such-flag-in-vllm"]):
        print("the vLLM parser accepted an unknown flag; this check would prove nothing", file=sys.stderr)
        return 1
    failures = 0
    for r in records:
        where = f"{r['stack']}: {r['where']}"
        try:
            args = parse(parser, cmd, r["engine_argv"])
            engine = AsyncEngineArgs.from_cli_args(args)
            kv = engine.kv_transfer_config
            if "--kv-transfer-config" in r["engine_argv"]:
                if not isinstance(kv, KVTransferConfig):
                    raise TypeError(f"--kv-transfer-config parsed as {type(kv).__name__}, not KVTransferConfig")
                if kv.kv_connector not in KVConnectorFactory._registry:
                    raise ValueError(f"connector {kv.kv_connector!r} is not registered in vLLM")
                if not kv.is_kv_transfer_instance:
                    raise ValueError(f"kv_role {kv.kv_role!r} makes no KV-transfer instance")
                backends = kv.get_from_extra_config("backends", None)
                if not (isinstance(backends, list) and backends and all(isinstance(b, str) for b in backends)):
                    raise ValueError(f"kv_connector_extra_config.backends is {backends!r}")
            if r["part"] == "worker" and not args.headless:
                raise ValueError("a multi-node worker must run --headless")
            if r["part"] != "single" and args.nnodes < 2:
                raise ValueError("a pod of a multi-node group without --nnodes")
            print(f"ok   {where}: {args.model_tag} tp={args.tensor_parallel_size} pp={args.pipeline_parallel_size} "
                  f"dp={args.data_parallel_size} nnodes={args.nnodes} headless={args.headless} "
                  f"kv={kv.kv_connector + str(kv.kv_connector_extra_config.get('backends')) if kv else None}")
        except (Exception, SystemExit) as e:  # argparse exits; report and go on, every failure in one run
            failures += 1
            print(f"FAIL {where}: {type(e).__name__}: {e}\n     argv: {r['engine_argv']}", file=sys.stderr)
    print(f"vllm {vllm.__version__}: {len(records) - failures} of {len(records)} engine command lines parse")
    return 1 if failures or not records else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
