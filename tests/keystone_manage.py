"""`keystone-manage` commands in one process, run by the Keystone venv's interpreter
(tests/keystone.py; never imported by ours):

    python -P tests/keystone_manage.py CONFIG_FILE "COMMAND ARGS" ["COMMAND ARGS" ...]

Importing Keystone's CLI takes ~4 s (SAML schemas, oslo.messaging, SQLAlchemy), and a
fresh Keystone needs four commands (db_sync, fernet_setup, credential_setup,
bootstrap): one import, then each command in a forked child, because oslo.config's
CONF parses its command line once per process. Stops at the first that fails.

`-P`: this file's folder must not come first on sys.path, or tests/keystone.py would
be imported as Keystone.
"""

import os
import shlex
import sys

from keystone.cmd import cli


def run(config_file: str, command: str) -> int:
    pid = os.fork()
    if pid == 0:
        try:
            cli.main(argv=["keystone-manage", "--config-file", config_file, *shlex.split(command)])
        except SystemExit as stop:
            os._exit(stop.code if isinstance(stop.code, int) else 1)
        except BaseException:
            import traceback

            traceback.print_exc()
            os._exit(1)
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def main(config_file: str, *commands: str) -> int:
    for command in commands:
        code = run(config_file, command)
        if code != 0:
            print(f"keystone-manage {command}: exit {code}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
