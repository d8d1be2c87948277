from setuptools import find_packages, setup

package_name = "farl_teleop"

setup(
    name=package_name,
    version="0.1.0",
    packages=find_packages(exclude=["test"]),
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + package_name]),
        ("share/" + package_name, ["package.xml"]),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="farl maintainers",
    maintainer_email="maintainers@farl-robotics.org",
    description="SpaceMouse and keyboard teleoperation and demonstration labelling; the teleop node.",
    license="Apache-2.0",
    entry_points={"console_scripts": ["teleop_node = farl_teleop.executables:teleop_node"]},
)
