"""Robot side of farl: the hard safety envelope and the robot nodes (sim now; franky on a real Panda)."""
