"""The chat app's screens: joining and help."""
