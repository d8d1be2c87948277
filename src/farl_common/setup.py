from setuptools import find_packages, setup

package_name = "farl_common"

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
    description="Shared ground of farl: message typestore and converters, episode bags, config schema, the rclpy and in-process node runtimes, the episode recorder node.",
    license="Apache-2.0",
    entry_points={"console_scripts": ["episode_recorder_node = farl_common.executables:episode_recorder_node"]},
)
