"""``greenroom serve`` with the test ``disc`` provider registered (for restart tests)."""

from __future__ import annotations

import sys

from disc_provider import register

from greenroom.cli import main

if __name__ == "__main__":
    register()
    sys.argv = ["greenroom", "serve", *sys.argv[1:]]
    main()
