#!/usr/bin/env python3
"""console_stamp.py CONSOLE OUT -- follow a VM's serial console file (qemu
appends to it) and write each line to OUT as "SECONDS<TAB>TEXT", SECONDS the
host's clock (time.time()) when the line was read.

A prompt ends without a newline ("reimage-a login: "): what a read leaves
unterminated is written at once, stamped with the time it arrived, and the
rest of that line, when it comes, as a line of its own.  The file is read
every 10 ms: a stamp is at most that late.  Runs until killed.
"""
import os
import sys
import time


def main():
    console, out = sys.argv[1], sys.argv[2]
    while not os.path.exists(console):
        time.sleep(0.01)
    with open(console, "rb") as src, open(out, "a", buffering=1) as dst:
        while True:
            chunk = src.read()
            if not chunk:
                time.sleep(0.01)
                continue
            now = time.time()
            text = chunk.decode("utf-8", "replace").replace("\r", "")
            for line in text.split("\n"):
                if line:
                    dst.write("%.3f\t%s\n" % (now, line))


if __name__ == "__main__":
    main()
