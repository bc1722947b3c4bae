"""supervisord event listener: every line a process writes, on supervisord's terminal,
prefixed with the process name (`logic    | logic consuming ...`).

supervisord sends output in chunks (PROCESS_LOG events) that may end mid-line: the
unfinished tail of each process waits for the rest. The listener protocol is on
stdin/stdout, so the lines go to stderr, which the config points at the terminal."""

import sys

from supervisor import childutils

WIDTH = 8


def main() -> None:
    partial: dict[str, str] = {}
    while True:
        headers, payload = childutils.listener.wait(sys.stdin, sys.stdout)
        if headers["eventname"].startswith("PROCESS_LOG"):
            fields, data = childutils.eventdata(payload)
            name = fields["processname"]
            *lines, rest = (partial.pop(name, "") + data).split("\n")
            if rest:
                partial[name] = rest
            for line in lines:
                sys.stderr.write(f"{name:<{WIDTH}} | {line}\n")
            sys.stderr.flush()
        childutils.listener.ok(sys.stdout)


if __name__ == "__main__":
    main()
