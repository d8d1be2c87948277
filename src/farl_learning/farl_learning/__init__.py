"""Networks, world model, offline pre-training and online PPO; policy and learner nodes (issue 3)."""
