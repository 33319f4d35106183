"""Worked examples: optimizer plugins to read and copy.

See the README, "Write your own optimizer".
"""
