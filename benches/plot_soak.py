"""Plots the soak's samples (CSV from benches/soak.rs) to a PNG: faultline's fds and resident memory
over time, with the connection rate, so a leak shows as a slope."""

import csv
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main(csv_path: str, png_path: str) -> None:
    with open(csv_path, newline="") as f:
        rows = list(csv.DictReader(f))
    if len(rows) < 2:
        sys.exit(f"plot_soak: {csv_path} has {len(rows)} samples; need at least 2")
    t = [float(r["seconds"]) / 60 for r in rows]
    fds = [int(r["fds"]) for r in rows]
    rss = [int(r["rss_kib"]) / 1024 for r in rows]
    conns = [int(r["connections"]) for r in rows]
    rate = [0.0] + [
        (conns[i] - conns[i - 1]) / ((t[i] - t[i - 1]) * 60 or 1) for i in range(1, len(rows))
    ]
    fig, axes = plt.subplots(3, 1, figsize=(9, 8), sharex=True)
    axes[0].plot(t, fds, color="tab:blue")
    axes[0].set_ylabel("open fds")
    axes[0].set_ylim(bottom=0)
    axes[1].plot(t, rss, color="tab:red")
    axes[1].set_ylabel("resident MiB")
    axes[1].set_ylim(bottom=0)
    axes[2].plot(t, rate, color="tab:green")
    axes[2].set_ylabel("new connections/s")
    axes[2].set_ylim(bottom=0)
    axes[2].set_xlabel("minutes")
    fig.suptitle(
        f"faultline soak: {conns[-1]:,} connections with random faults in {t[-1]:.1f} min"
    )
    fig.tight_layout()
    fig.savefig(png_path, dpi=90)
    print(f"plot_soak: wrote {png_path}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
