# kvmops-get-pip-standin
"""Offline stand-in for ansible-test's pip bootstrap script (get-pip-<version>.py).

ansible-test creates a virtual environment without pip for each sanity test that needs packages and
bootstraps pip into it by running a get-pip script that it downloads from ci-files.testing.ansible.com
(not reachable here) and caches as ~/.ansible/test/cache/get_pip_<version with underscores>.py.
scripts/ansible-test copies this file there under every name ansible-test asks for:

  ansible-core 2.16         get_pip_23_1_2.py (get_pip_21_3_1.py on Python 3.6, get_pip_20_3_4.py on 2.7)
  ansible-core 2.17         get_pip_23_1_2.py
  ansible-core 2.18, 2.19   get_pip_24_2.py
  ansible-core 2.20, 2.21   get_pip_25_2.py

ansible-test runs it inside the new venv through its quiet_pip.py (runpy, run_name '__main__'), with
sys.argv[1:] being get-pip arguments, for example:
  2.16/2.17:  --disable-pip-version-check pip==23.1.2 setuptools==67.7.2 wheel==0.37.1
  2.18+:      --disable-pip-version-check pip==25.2 --no-setuptools --no-wheel
and an environment that ansible-test has already reduced to PATH, HOME, LC_ALL (plus GET_PIP and,
on 2.18+, PIP_BREAK_SYSTEM_PACKAGES), so pip's settings come from its config files
(/etc/pip.conf, /etc/xdg/pip/pip.conf, ~/.config/pip/pip.conf).

What get-pip does, done without a download: put the pip bundled with the interpreter in place
(ensurepip), then `pip install --upgrade --force-reinstall` the requested packages from the index
(pip itself is always among them).
ensurepip sets PIP_CONFIG_FILE=/dev/null in os.environ (so it ignores every pip config file); it
runs in a child process here, and os.environ is restored in any case, so the real install keeps the
machine's certificate, constraint and index settings.

Kept compatible with Python 2.7 and 3.6, which ansible-test 2.16 can also bootstrap.
"""
from __future__ import absolute_import, division, print_function

import os
import subprocess
import sys

GET_PIP_ONLY_OPTIONS = ('--no-setuptools', '--no-wheel', '--no-pip')


def requested(args, name):
    """Return True if a requirement for the named package is among args."""
    for arg in args:
        if arg.startswith('-'):
            continue
        base = arg
        for sep in '=<>!~[;@ ':
            base = base.split(sep)[0]
        if base.strip().lower().replace('_', '-') == name:
            return True
    return False


def run(command, quiet=False):
    """Run a command with the caller's environment (output shown only on failure if quiet); exit on failure."""
    sys.stdout.flush()
    sys.stderr.flush()
    if quiet:
        process = subprocess.Popen(command, env=dict(os.environ), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        output = process.communicate()[0]
        status = process.returncode
    else:
        status = subprocess.call(command, env=dict(os.environ))
    if status:
        if quiet:
            sys.stderr.write(output.decode('utf-8', 'replace'))
        sys.stderr.write('get_pip stand-in: command failed with status %d: %s\n' % (status, ' '.join(command)))
        sys.exit(status)


def main():
    args = sys.argv[1:]
    saved_environ = dict(os.environ)
    try:
        # A child process: ensurepip's PIP_CONFIG_FILE=/dev/null stays there.
        run([sys.executable, '-m', 'ensurepip', '--upgrade', '--default-pip'], quiet=True)
    finally:
        os.environ.clear()
        os.environ.update(saved_environ)

    pip_args = [a for a in args if a not in GET_PIP_ONLY_OPTIONS]
    packages = [a for a in pip_args if not a.startswith('-')]

    # ansible-test pins every package it wants. get-pip would also add unpinned setuptools and wheel
    # unless told --no-setuptools/--no-wheel; that is left out: the newest releases need a newer
    # Python than 2.7/3.6, and ensurepip's old pip there does not skip them reliably.
    if '--no-pip' not in args and not requested(packages, 'pip'):
        pip_args.append('pip')

    run([sys.executable, '-m', 'pip', 'install', '--upgrade', '--force-reinstall'] + pip_args)

    # ensurepip of Python < 3.12 also installs setuptools; get-pip --no-setuptools would not have.
    if '--no-setuptools' in args and not requested(packages, 'setuptools'):
        subprocess.call([sys.executable, '-m', 'pip', 'uninstall', '--yes', '--quiet', 'setuptools'],
                        env=dict(os.environ), stdout=open(os.devnull, 'w'), stderr=subprocess.STDOUT)


if __name__ == '__main__':
    main()
