"""Stand-ins at the hardware boundary only (never in place of farl's own logic)."""
