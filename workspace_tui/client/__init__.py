"""The reconnecting client shared by the TUI and the one-liners."""
