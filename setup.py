"""Map the fixed top-level folders into the single ``labos`` import namespace.

planners/ -> labos.planners, drivers/ -> labos.drivers, models/ -> labos.models,
simulator/ -> labos.simulator; nothing generic lands in site-packages.
"""

from setuptools import find_packages, setup

FOLDERS = {
    "labos": "labos",
    "planners": "labos.planners",
    "drivers": "labos.drivers",
    "models": "labos.models",
    "simulator": "labos.simulator",
}

packages: list[str] = []
package_dir: dict[str, str] = {}
for folder, name in FOLDERS.items():
    package_dir[name] = folder
    packages.append(name)
    for sub in find_packages(folder):
        packages.append(f"{name}.{sub}")

setup(
    packages=packages,
    package_dir=package_dir,
    package_data={
        "": [
            "*.json",
            "*.csv",
            "*.cif",
            "*.ini",
            "*.mako",
            "*.html",
            "*.css",
            "*.js",
            "*.toml",
            "*.yaml",
            "*.pt",
        ]
    },
    include_package_data=True,
)
