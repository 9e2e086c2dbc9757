"""faig-gui: a diagnostic tool for blind super-resolution networks (FAIG, NeurIPS 2021)."""

__version__ = "0.1.0"
