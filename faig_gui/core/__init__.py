"""Qt-free engine of faig-gui: torch and numpy only (the CLI and the app share it)."""
