#!/usr/bin/env python3
"""Writes a burstier variant of a trace (t_seconds,requests): every minute times a log-normal
factor (sigma 0.25) and, about once in 45 minutes, a surge of 1.5 to 3 times for 1 to 4
minutes. The online calibration's step (FORECAST_CALIBRATION_STEP) was chosen on the Twitter
trace and on this variant of it (seed 7), never on NASA or Alibaba:

    mkdir -p /tmp/burstier
    python3 scripts/burstier-trace.py ../shared/traces/twitter_stream_aug2021_1min.csv \
        /tmp/burstier/twitter_stream_aug2021_1min.csv
    replay evaluate --traces-dir /tmp/burstier --trace twitter --docs /tmp/burstier-report \
        --scenario demo --scenario quarter --scenario demo-100 --forecast-calibration-step 0.02
"""
import math
import random
import sys


def main() -> int:
    if len(sys.argv) not in (3, 4):
        print("usage: burstier-trace.py IN.csv OUT.csv [SEED]", file=sys.stderr)
        return 2
    source, target = sys.argv[1], sys.argv[2]
    random.seed(int(sys.argv[3]) if len(sys.argv) == 4 else 7)
    with open(source, encoding="utf-8") as f:
        rows = f.read().split("\n")
    out = [rows[0]]
    surge, amplitude = 0, 1.0
    for row in rows[1:]:
        if not row.strip():
            continue
        t, requests = row.split(",")
        if surge == 0 and random.random() < 1 / 45:
            surge, amplitude = random.randint(1, 4), random.uniform(1.5, 3.0)
        factor = math.exp(random.gauss(0, 0.25))
        if surge > 0:
            factor *= amplitude
            surge -= 1
        out.append(f"{t},{int(float(requests) * factor)}")
    with open(target, "w", encoding="utf-8") as f:
        f.write("\n".join(out) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
