"""`python -m ops preflight --stack S`: the deploy checks `pulumi preview` runs (stacks/preflight.py), before a
deploy and without Pulumi, against the account of your AWS credentials (or, with `--recorded`, recorded answers).

Exit 0 when every check passes, 1 when one fails (one line per problem, with its fix), 2 when the stack file is
invalid.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from stacks.config import ConfigError, decode, engine_config_from_file, parse
from stacks.preflight import Answers, results

ROOT = Path(__file__).resolve().parent.parent


def stack_path(stack: str | None, config: str | None, root: Path = ROOT) -> Path:
    return Path(config) if config else root / f"Pulumi.{stack}.yaml"


def answers_for(region: str, recorded: str | None) -> Answers:
    if recorded:
        from tooling.fakes import RecordedAnswers

        data = json.loads(Path(recorded).read_text())
        if data.get("region") != region:
            raise SystemExit(f"{recorded} answers for region {data.get('region')}, the stack is in {region}")
        return RecordedAnswers(data)
    from stacks.preflight_aws import AwsAnswers

    return AwsAnswers(region)


def report(stack: str, region: str, checked: list, out=sys.stdout) -> int:
    failed = sum(bool(found) for _, found in checked)
    print(f"preflight {stack} ({region}): {len(checked) - failed} of {len(checked)} checks pass", file=out)
    for check, found in checked:
        print(f"  {'FAIL' if found else 'ok  '}  {check.title}", file=out)
        for issue in found:
            print(f"          - {issue}", file=out)
    return 1 if failed else 0


def main(stack: str | None, config: str | None = None, recorded: str | None = None, out=sys.stdout) -> int:
    path = stack_path(stack, config)
    if not path.is_file():
        print(f"error: no such stack file: {path}", file=sys.stderr)
        return 2
    name = stack or path.name.removeprefix("Pulumi.").removesuffix(".yaml")
    engine, _ = engine_config_from_file(path)
    try:
        cfg = parse(decode(engine), stack=name)
    except ConfigError as err:
        print(f"{path.name}: {err}", file=sys.stderr)
        return 2
    return report(name, cfg.region, results(cfg, answers_for(cfg.region, recorded)), out=out)
