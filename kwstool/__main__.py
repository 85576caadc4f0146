import sys

from kwstool.cli import main

sys.exit(main())
