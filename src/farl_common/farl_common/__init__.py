"""Shared ground of farl: message typestore and converters, episode bags, config schema, node runtimes."""
