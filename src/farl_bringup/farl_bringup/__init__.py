"""Composition root: the farl CLI, the mocked sim graph, launch and config installation."""
