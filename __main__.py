"""disagg: disaggregated LLM inference on AWS, as one Pulumi stack.

Thin on purpose: load and validate the typed config (every problem reported at once, before any resource is
registered), run the deploy checks (stacks/preflight.py: placeholder CIDRs, capacity, quotas, reservations), build
the stack, export its outputs.
"""

import pulumi

from stacks.config import ConfigError, from_pulumi
from stacks.preflight import enforce
from stacks.stack import build

try:
    config = from_pulumi()
    enforce(config)
except ConfigError as err:
    # RunError ends the program with the message alone: no traceback, and nothing has been registered.
    raise pulumi.RunError(str(err)) from None

for key, value in build(config).items():
    pulumi.export(key, value)
