"""disagg: disaggregated LLM inference on AWS, as one Pulumi stack.

Thin on purpose: load and validate the typed config (every problem reported at once, before any resource is
registered), build the stack, export its outputs.
"""

import pulumi

from stacks.config import ConfigError, from_pulumi
from stacks.stack import build

try:
    config = from_pulumi()
except ConfigError as err:
    # RunError ends the program with the message alone: no traceback, and nothing has been registered.
    raise pulumi.RunError(str(err)) from None

for key, value in build(config).items():
    pulumi.export(key, value)
