import sys

from stacks.sizing.cli import main

sys.exit(main())
