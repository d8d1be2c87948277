from setuptools import find_packages, setup

package_name = "farl_learning"

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
    description="Networks, world model, offline pre-training (BC, Uni-O4) and online PPO; policy and learner nodes.",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "policy_node = farl_learning.executables:policy_node",
            "learner_node = farl_learning.executables:learner_node",
            "fosp_policy_node = farl_learning.executables:fosp_policy_node",
            "fosp_learner_node = farl_learning.executables:fosp_learner_node",
        ]
    },
)
