"""The ROS 2 side of the workspace: manifests catkin_pkg accepts, entry points that exist, launch files."""

from __future__ import annotations

import ast
import configparser
import importlib
import os
import re
from pathlib import Path

import pytest
from catkin_pkg.package import parse_package

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = sorted(p.name for p in (ROOT / "src").iterdir() if (p / "package.xml").exists())
PYTHON_PACKAGES = [p for p in PACKAGES if (ROOT / "src" / p / "setup.py").exists()]


def test_layout_of_the_design():
    assert set(PACKAGES) == {
        "farl_interfaces",
        "farl_common",
        "farl_sim",
        "farl_robot",
        "farl_perception",
        "farl_teleop",
        "farl_learning",
        "farl_safety_shield",
        "farl_bringup",
    }
    link = ROOT / "ros2_ws" / "src"
    assert link.is_symlink() and os.readlink(link) == "../src"
    for d in ("launch", "config", "docker", "tests", "bench"):
        assert (ROOT / d).is_dir(), d


@pytest.mark.parametrize("pkg", PACKAGES)
def test_package_xml_is_valid_format_3(pkg):
    # catkin_pkg rejects what colcon would silently build as a plain Python package (dependencies.md).
    package = parse_package(str(ROOT / "src" / pkg / "package.xml"))
    package.validate()
    assert package.package_format == 3
    assert package.name == pkg
    assert package.licenses and package.maintainers
    build_type = package.get_build_type()
    assert build_type == ("ament_cmake" if pkg == "farl_interfaces" else "ament_python")


@pytest.mark.parametrize("pkg", PYTHON_PACKAGES)
def test_ament_python_package_files(pkg):
    base = ROOT / "src" / pkg
    assert (base / "resource" / pkg).is_file()
    assert (base / pkg / "__init__.py").is_file()
    cfg = configparser.ConfigParser()
    cfg.read(base / "setup.cfg")
    assert cfg["develop"]["script_dir"] == f"$base/lib/{pkg}"
    assert cfg["install"]["install_scripts"] == f"$base/lib/{pkg}"


def _entry_points(pkg: str) -> list[str]:
    tree = ast.parse((ROOT / "src" / pkg / "setup.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) and node.arg == "entry_points":
            return ast.literal_eval(node.value)["console_scripts"]
    return []


@pytest.mark.parametrize("pkg", PYTHON_PACKAGES)
def test_entry_points_import(pkg):
    for spec in _entry_points(pkg):
        _, target = (s.strip() for s in spec.split("="))
        module, func = target.split(":")
        assert callable(getattr(importlib.import_module(module), func)), spec


@pytest.mark.parametrize("pkg", PYTHON_PACKAGES)
def test_node_packages_declare_what_they_import(pkg):
    xml = (ROOT / "src" / pkg / "package.xml").read_text()
    deps = set(re.findall(r"<(?:exec_)?depend>([^<]+)<", xml))
    code = "\n".join(p.read_text() for p in (ROOT / "src" / pkg / pkg).rglob("*.py"))
    for other in PACKAGES:
        if other != pkg and re.search(rf"\b(from|import) {other}\b", code):
            assert other in deps, f"{pkg} imports {other} but package.xml does not depend on it"
    if _entry_points(pkg) and pkg != "farl_bringup":
        assert "rclpy" in deps


def test_interfaces_build_every_msg():
    cmake = (ROOT / "src" / "farl_interfaces" / "CMakeLists.txt").read_text()
    for msg in (ROOT / "src" / "farl_interfaces" / "msg").glob("*.msg"):
        assert f'"msg/{msg.name}"' in cmake


def test_bringup_installs_launch_and_config_from_inside_the_package():
    """The usual ROS layout: nothing outside the package is globbed (a --symlink-install build would
    otherwise leave link folders in the tree); the top-level names are links into it."""
    setup = (ROOT / "src" / "farl_bringup" / "setup.py").read_text()
    assert 'glob("launch/*.launch.py")' in setup and 'glob("config/*.yaml")' in setup and "../" not in setup
    here = Path.cwd()
    os.chdir(ROOT / "src" / "farl_bringup")
    try:
        from glob import glob

        assert len(glob("launch/*.launch.py")) == 6 and len(glob("config/*.yaml")) == 10
    finally:
        os.chdir(here)
    for name in ("launch", "config"):
        assert (ROOT / name).is_symlink() and (ROOT / name).resolve() == ROOT / "src" / "farl_bringup" / name


@pytest.mark.parametrize("launch", sorted((ROOT / "launch").glob("*.launch.py")), ids=lambda p: p.name)
def test_launch_files_define_generate_launch_description(launch):
    tree = ast.parse(launch.read_text())
    names = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    assert "generate_launch_description" in names
    task = launch.name.removesuffix(".launch.py")
    assert f'launch_description("{task}")' in launch.read_text()
    assert (ROOT / "config" / f"{task}.yaml").is_file()


def test_docker_and_the_ros2_docs_install_farl_pinned_with_setuptools_below_80_before_colcon():
    """torch 2.14.1 wants setuptools >= 77; colcon's --symlink-install silently copies from 80 on."""
    for path in (ROOT / "docker" / "Dockerfile", ROOT / "docs" / "ros2.md"):
        text = path.read_text()
        pip = text.index('-e ".[hardware]" "setuptools>=77.0.3,<80"')
        assert pip < text.index("colcon build --symlink-install"), path
    assert "torch torchvision" not in (ROOT / "docker" / "Dockerfile").read_text()  # pins come from pyproject


def test_the_rviz_and_foxglove_views_show_the_topics_farl_publishes():
    """The shipped views name the shield's MarkerArray topic and its frame, and plot fields that exist."""
    import json

    import yaml

    from farl_common.messages import TypestoreFactory
    from farl_common.topics import DEFAULT_TOPICS, TOPIC_TYPES
    from farl_safety_shield.markers import FRAME

    viz = ROOT / "src" / "farl_bringup" / "viz"
    rviz = yaml.safe_load((viz / "farl.rviz").read_text())["Visualization Manager"]
    assert rviz["Global Options"]["Fixed Frame"] == FRAME
    (markers,) = [d for d in rviz["Displays"] if d["Class"] == "rviz_default_plugins/MarkerArray"]
    assert markers["Topic"]["Value"] == DEFAULT_TOPICS["shield_markers"]
    assert set(markers["Namespaces"]) == {"imagined_path", "imagined_states", "risk"}

    layout = json.loads((viz / "farl_foxglove_layout.json").read_text())
    panels = layout["configById"]
    assert set(panels["3D!farlscene"]["topics"]) == {DEFAULT_TOPICS["shield_markers"]}
    by_topic = {v: k for k, v in DEFAULT_TOPICS.items()}
    store = TypestoreFactory().store
    paths = [p["value"] for k, c in panels.items() if k.startswith("Plot!") for p in c["paths"]]
    paths.append(panels["RawMessages!farlevents"]["topicPath"] + ".episode")
    for path in paths:
        topic, fieldname = path.split(".", 1)
        fields = [name for name, _ in store.fielddefs[TOPIC_TYPES[by_topic[topic]]][1]]
        assert fieldname in fields, path
    placed = json.dumps(layout["layout"])
    assert all(k in placed for k in panels)  # every panel is on the page
