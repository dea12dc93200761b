"""The worked examples of README.md's "Extending collapse", tested by tests/test_extending.py."""
