"""Tests of the admin web app and API."""
