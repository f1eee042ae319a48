"""Chaos tests: a real cluster on MariaDB under kill -9 and network cuts."""
