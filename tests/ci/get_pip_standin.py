# Offline stand-in for ansible-test's get-pip bootstrap script.
#
# ansible-test creates its virtual environments with `python -m venv --without-pip` and then
# downloads get-pip.py from ci-files.testing.ansible.com, which cannot be reached from our
# machines. It looks for a cached copy first, at ~/.ansible/test/cache/get_pip_<version>.py
# (the version is pinned in ansible_test/_internal/python_requirements.py: 24.2 for
# ansible-core 2.19). `./dev` copies this file there. It does what get-pip.py does, with
# tools already on the machine: bootstrap pip with ensurepip, then install the requested
# pip version (e.g. `pip==24.2`) from the configured package index.
"""Offline stand-in for get-pip.py: ensurepip, then `pip install <args>` from the configured index."""

from __future__ import annotations

import subprocess
import sys

# get-pip.py accepts these to skip setuptools and wheel; pip itself does not know them.
GET_PIP_ONLY_OPTIONS = ('--no-setuptools', '--no-wheel')


def main() -> None:
    pip_args = [arg for arg in sys.argv[1:] if arg not in GET_PIP_ONLY_OPTIONS]
    subprocess.check_call([sys.executable, '-m', 'ensurepip', '--default-pip'], stdout=subprocess.DEVNULL)
    subprocess.check_call([sys.executable, '-m', 'pip', 'install', '--quiet', '--disable-pip-version-check'] + pip_args)


if __name__ == '__main__':
    main()
