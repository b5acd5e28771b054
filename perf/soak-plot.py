#!/usr/bin/python3
"""perf/soak-plot.py SOAK.csv OUT.png: the soak's samples over time (Debian's
python3-matplotlib): mbufs in use, rvsd's resident memory, connection-table entries,
and drops per second by reason (the reasons that occurred)."""
import csv
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main():
    src, out = sys.argv[1], sys.argv[2]
    rows = list(csv.DictReader(open(src)))
    if not rows:
        sys.exit("perf/soak-plot.py: no samples")
    t = [float(r["t_s"]) / 60 for r in rows]
    col = lambda k: [float(r[k]) for r in rows]
    fig, ax = plt.subplots(4, 1, figsize=(9, 11), sharex=True)
    ax[0].plot(t, col("mbufs_in_use"))
    ax[0].set_ylabel("mbufs in use")
    ax[1].plot(t, col("rss_mb"))
    ax[1].set_ylabel("rvsd resident MB")
    ax[2].plot(t, col("connections"))
    ax[2].set_ylabel("connections")
    for k in rows[0]:
        if not k.startswith("drop_"):
            continue
        v = col(k)
        if v[-1] == 0:
            continue
        rate = [0.0] + [(b - a) / ((t1 - t0) * 60) for a, b, t0, t1 in zip(v, v[1:], t, t[1:])]
        ax[3].plot(t, rate, label=k[5:])
    ax[3].set_ylabel("drops / s")
    ax[3].set_xlabel("minutes")
    if ax[3].get_legend_handles_labels()[0]:
        ax[3].legend(fontsize="small", ncol=2)
    for a in ax:
        a.set_ylim(bottom=0)
        a.grid(alpha=0.3)
    fig.suptitle("rvsd soak: established flows, new connections, malformed frames; rvsadm every 5 s, reload every minute", fontsize="medium")
    fig.tight_layout()
    fig.savefig(out, dpi=80)


if __name__ == "__main__":
    main()
