"""The worked examples of docs/extending.md, tested by tests/test_extending.py."""
