"""Keep CPU cores busy at a set duty cycle, to run the test suite on a loaded machine.

CI runs on a shared 2-core machine; a test that only passes on an idle one fails there. Run the
suite beside this to see it the way CI does::

    python scripts/cpu_burner.py --cores 2 --load 0.5 --seconds 1800 &
    make test

Each worker process spins for ``load`` of every 100 ms period and sleeps the rest. It stops by
itself after ``--seconds`` (or on Ctrl-C / SIGTERM), so a forgotten burner cannot outlive a run.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import signal
import time

PERIOD_S = 0.1


def _burn(load: float, until: float) -> None:
    busy = PERIOD_S * load
    while (start := time.monotonic()) < until:
        while time.monotonic() - start < busy:
            pass
        time.sleep(max(0.0, PERIOD_S - (time.monotonic() - start)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cores", type=int, default=os.cpu_count() or 1, help="worker processes")
    ap.add_argument("--load", type=float, default=0.5, help="duty cycle per core, 0..1")
    ap.add_argument("--seconds", type=float, default=600.0, help="stop after this long")
    args = ap.parse_args()
    if not 0.0 < args.load <= 1.0:
        ap.error(f"--load must be in (0, 1], got {args.load}")
    if args.cores < 1 or args.seconds <= 0:
        ap.error("--cores must be >= 1 and --seconds > 0")
    until = time.monotonic() + args.seconds
    workers = [
        mp.Process(target=_burn, args=(args.load, until), daemon=True) for _ in range(args.cores)
    ]
    for w in workers:
        w.start()

    def stop(*_: object) -> None:
        for w in workers:
            w.terminate()

    signal.signal(signal.SIGTERM, stop)
    try:
        for w in workers:
            w.join()
    except KeyboardInterrupt:
        stop()


if __name__ == "__main__":
    main()
