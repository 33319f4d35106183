"""What the tests share: the import graph, a real server, Chromium, the optimizer-input table."""
