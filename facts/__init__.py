"""Facts both layers stand on: the instance catalog, the versions table, the LLM model catalog and the project's
conventions (roles, labels, taints, tag keys, ports).

The bottom layer. `facts` imports nothing from `components`, `stacks`, `tooling` or `ops`; `components` (the library
of ComponentResources and pure builders) and `stacks` (the stack: typed config, rules, plan, composition) both import
it. tests/unit/test_layers.py holds the rule.
"""
