"""Launch faig-gui from a source checkout: same as the `faig-gui` command."""
import sys

from faig_gui.cli import main

if __name__ == "__main__":
    sys.exit(main())
