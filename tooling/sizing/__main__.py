import sys

from tooling.sizing.cli import main

sys.exit(main())
