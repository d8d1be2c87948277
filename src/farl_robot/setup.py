from setuptools import find_packages, setup

package_name = "farl_robot"

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
    description="Robot side of farl: hard safety envelope, sim robot node (FailureBench), franky driver for the Franka Panda.",
    license="Apache-2.0",
    entry_points={"console_scripts": ["robot_node = farl_robot.executables:robot_node"]},
)
