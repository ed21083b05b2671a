"""The UI: pages through AppTest, the whole app in real Chromium, sessions and the launcher."""
