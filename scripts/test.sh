#!/usr/bin/env bash
# The whole test suite: set-up (scripts/setup.sh, scripts/setup_ros.sh), then the tests in .venv, the
# documentation site built strictly, and the `ros`-marked tests (rclpy, and ros2 launch where it is set
# up) in .venv-ros. Extra arguments go to both pytest runs.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/setup_ros.sh
.venv/bin/python -m pytest "$@"
echo "== the documentation site, built strictly (a warning fails) =="
.venv/bin/sphinx-build -W --keep-going -q -b html docs docs/_build/html
echo "== the rclpy layer, under ROS 2 Jazzy's rclpy (.venv-ros) =="
.venv-ros/bin/python-ros -m pytest -m ros "$@"
