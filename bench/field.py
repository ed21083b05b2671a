"""Field-study load: 200 participants as threads against a throwaway PostgreSQL this benchmark
starts, with double submits, once without and once with a database restart in the middle.

    ./studio bench field [--participants 200] [--trials 5]

Reports the answers stored against those sent (nothing lost, nothing twice) and the commit
times as a participant waits for them (p50 / p95 / max, retries during the outage included)."""
from __future__ import annotations

import argparse
import json
import time

from studies.load import field_load

from .pgserver import Server


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="./studio bench field", description=__doc__.split("\n\n")[0])
    p.add_argument("--participants", type=int, default=200)
    p.add_argument("--trials", type=int, default=5)
    p.add_argument("--outage-s", type=float, default=2.0, help="how long the database is down")
    args = p.parse_args(argv)
    server = Server()
    try:
        out = {"steady": field_load(server.url, args.participants, args.trials)}

        def outage():
            server.stop()
            time.sleep(args.outage_s)
            server.start()
        out["restart"] = field_load(server.url, args.participants, args.trials, outage=outage)
    finally:
        server.close()
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
