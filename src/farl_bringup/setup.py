from glob import glob

from setuptools import find_packages, setup

package_name = "farl_bringup"

setup(
    name=package_name,
    version="0.1.0",
    packages=find_packages(exclude=["test"]),
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + package_name]),
        ("share/" + package_name, ["package.xml"]),
        # The usual ROS layout: launch/ and config/ live in this package (the repository's top-level
        # launch/ and config/ are links here), so `colcon build --symlink-install` leaves the tree clean.
        ("share/" + package_name + "/launch", glob("launch/*.launch.py")),
        ("share/" + package_name + "/config", glob("config/*.yaml")),
        # RViz2's and Foxglove's views of the shield (docs/live-view.md)
        ("share/" + package_name + "/viz", glob("viz/*.rviz") + glob("viz/*.json")),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="farl maintainers",
    maintainer_email="maintainers@farl-robotics.org",
    description="Composition root of farl: launch files, task configs, the farl command and the mocked sim runner.",
    license="Apache-2.0",
    entry_points={"console_scripts": ["farl = farl_bringup.cli:main"]},
)
