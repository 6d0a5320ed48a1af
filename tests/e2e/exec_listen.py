#!/usr/bin/python3
"""Socket activation the way systemd does it, for tests.

    exec_listen.py [--fd N[:NAME]]... [--pid-offset K] -- PROGRAM [ARG]...

Each --fd names a descriptor this process inherited (open, e.g. passed with
subprocess's pass_fds); they are moved, in the order given, to 3, 4, ...,
and the program is exec'd (same process) with

    LISTEN_FDS=<count>  LISTEN_PID=<this pid>  LISTEN_FDNAMES=<names, ':'-joined>

LISTEN_PID can only be set here, after the fork: it is the PID the program
will run as. --pid-offset K sets LISTEN_PID to that PID + K instead, to test
that a program ignores variables meant for another process.
"""

import os
import sys


def main(argv):
    fds, names, offset = [], [], 0
    i = 0
    while i < len(argv) and argv[i] != "--":
        if argv[i] == "--fd" and i + 1 < len(argv):
            fd, _, name = argv[i + 1].partition(":")
            fds.append(int(fd))
            names.append(name)
            i += 2
        elif argv[i] == "--pid-offset" and i + 1 < len(argv):
            offset = int(argv[i + 1])
            i += 2
        else:
            sys.exit("exec_listen.py: unexpected argument %r\n%s" % (argv[i], __doc__))
    prog = argv[i + 1:]
    if not prog:
        sys.exit("exec_listen.py: no program after --\n%s" % __doc__)

    # First out of the way (above every target and source), then into place,
    # so a source that is also a target (say --fd 4 --fd 3) is not clobbered.
    high = max(fds + [2 + len(fds)]) + 1
    moved = [os.dup2(fd, high + k, inheritable=False) for k, fd in enumerate(fds)]
    for fd in fds:
        if fd not in moved:
            os.close(fd)
    for k, fd in enumerate(moved):
        os.dup2(fd, 3 + k, inheritable=True)  # dup2 clears close-on-exec
        os.close(fd)

    env = dict(os.environ)
    env["LISTEN_FDS"] = str(len(fds))
    env["LISTEN_PID"] = str(os.getpid() + offset)
    if any(names):
        env["LISTEN_FDNAMES"] = ":".join(names)
    else:
        env.pop("LISTEN_FDNAMES", None)
    try:
        os.execve(prog[0], prog, env)
    except OSError as e:
        sys.exit("exec_listen.py: cannot run %s: %s" % (prog[0], e))


if __name__ == "__main__":
    main(sys.argv[1:])
