"""Placeholder: the admin helper replaces this module."""
