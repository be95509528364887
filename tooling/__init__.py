"""What runs beside the stack, never inside it: the offline render and its harness, the fake cloud, the summary,
the docs generator, the EFA image inputs and the sizing planner.

The top layer: `tooling` may import `stacks`, `components` and `facts`; `__main__.py` and everything it imports
never import `tooling` (tests/unit/test_layers.py).
"""
