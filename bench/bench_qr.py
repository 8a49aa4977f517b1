"""VietQR payload + PNG (target median ≤ 5 ms) and SVG (≤ 2 ms), in process."""

from __future__ import annotations

import time

from bench.common import Section, median, percentile


def run() -> Section:
    from payments.channels.vietqr.image import render_png, render_svg
    from payments.channels.vietqr.payload import VietQR, build_payload
    from payments.references import generate

    section = Section("VietQR payload and images", "make bench (bench/bench_qr.py)")
    png_times, svg_times, payload_times = [], [], []
    for i in range(300):
        # A new payment each time: nothing cached helps the first render of a payload.
        reference = generate()
        started = time.perf_counter()
        payload = build_payload(
            VietQR(
                bank_bin="970436", account="0011004321987", amount=400_000 + i, purpose=reference
            )
        )
        built = time.perf_counter()
        render_png(payload)
        png_done = time.perf_counter()
        render_svg(payload)
        svg_done = time.perf_counter()
        payload_times.append((built - started) * 1000)
        png_times.append((png_done - started) * 1000)
        svg_times.append((svg_done - png_done) * 1000)
    payload_ms, png_ms, svg_ms = median(payload_times), median(png_times), median(svg_times)
    section.add("payload alone, median", f"{payload_ms:.3f} ms")
    section.add(
        "payload + PNG, median (p99)",
        f"{png_ms:.2f} ms ({percentile(png_times, 99):.2f} ms)",
        target="≤ 5 ms",
    )
    section.add(
        "SVG of the same payload, median (p99)",
        f"{svg_ms:.2f} ms ({percentile(svg_times, 99):.2f} ms)",
        target="≤ 2 ms",
    )
    section.passed = png_ms <= 5 and svg_ms <= 2
    section.notes.append("300 payloads, each for a new reference: no cache helps.")
    return section
