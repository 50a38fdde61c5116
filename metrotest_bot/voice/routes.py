"""Placeholder: the voice helper replaces this module."""
