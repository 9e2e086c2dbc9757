import sys

from faig_gui.cli import main

sys.exit(main())
