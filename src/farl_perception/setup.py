from setuptools import find_packages, setup

package_name = "farl_perception"

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
    description="Camera sources, YOLOv8 and colour detection, 3-D object estimation; the perception node.",
    license="Apache-2.0",
    entry_points={"console_scripts": ["perception_node = farl_perception.executables:perception_node"]},
)
