#!/usr/bin/env python3
"""Draw one bench/run.sh results file as a single self-contained SVG chart.

Usage:
    python3 bench/chart.py bench/results/raw/20261203T233124Z.jsonl [--output OUT.svg] [--title TEXT]

Three grouped-bar panels put pgbench's tps next to BitBurst's req/s by connection count (adds to random
users, adds to one user, balance reads), with the in-memory store's adds and reads as reference lines; a fourth
panel shows BitBurst's p99 latency. The default output is latest.svg beside results/latest.md. Standard
library only, and the same input always gives the same bytes.
"""
import argparse
import html
import json
import math
import os
import re
import sys

WIDTH, HEIGHT = 1100, 800
PANEL_WIDTH, PANEL_HEIGHT = 505, 310
PANEL_ORIGINS = [(25, 55), (570, 55), (25, 385), (570, 385)]
PGBENCH_COLOUR, BITBURST_COLOUR, MEMORY_COLOUR, FAILED_COLOUR = "#7f8c8d", "#2e86de", "#34495e", "#c0392b"
BAR_PANELS = [("add-random", "adds to random users (req/s)"),
              ("add-hot", "adds to one hot user (req/s)"),
              ("balance-read", "balance reads (req/s)")]
# The same binary on its memory store: the HTTP path's own ceiling, drawn on the panel it bounds.
MEMORY_REFERENCES = {"add-random": "add-memory", "balance-read": "balance-memory"}
MEMORY_SCENARIOS = set(MEMORY_REFERENCES.values())
P99_COLOURS = {"add-random": "#e67e22", "add-hot": "#c0392b", "balance-read": "#27ae60", "add-memory": "#8e44ad"}
LABEL_GAP = 13  # px between stacked p99 labels, a little more than their font size


def load_results(path):
    """Map (scenario, connections) to a value or None (failed), for pgbench tps, BitBurst req/s and p99 ms."""
    results = {"tps": {}, "rps": {}, "p99_ms": {}}
    with open(path, encoding="utf-8", errors="replace") as lines:
        for line in lines:
            try:
                record = json.loads(line)
            except ValueError:
                continue  # other bench scripts and interrupted runs leave lines this chart cannot use
            if isinstance(record, dict) and isinstance(record.get("scenario"), str):
                add_record(results, record)
    return results


def number_or_none(value):
    # A JSON true would pass as the int 1 otherwise.
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def add_record(results, record):
    scenario, summary = record["scenario"], record.get("summary")
    if record.get("tool") == "pgbench" and isinstance(record.get("clients"), int):
        results["tps"][(scenario, record["clients"])] = number_or_none(record.get("tps"))
    elif record.get("tool") == "loadgen" and isinstance(summary, dict):
        operations = summary.get("operations") if isinstance(summary.get("operations"), dict) else {}
        operation = operations.get("balance" if scenario.startswith("balance-") else "add")
        connections = connections_of(summary)
        if connections is None or not isinstance(operation, dict):
            return
        # loadgen reports zeros for an operation that completed no request: that is no measurement.
        measured = operation.get("count", 1) != 0
        rps, p99_us = (number_or_none(operation.get(field)) if measured else None
                       for field in ("requests_per_second", "p99_us"))
        results["rps"][(scenario, connections)] = rps
        results["p99_ms"][(scenario, connections)] = None if p99_us is None else p99_us / 1000


def connections_of(summary):
    if isinstance(summary.get("connections"), int):
        return summary["connections"]
    # run.sh names its runs bench-<time>-<scenario>-c<connections>.
    match = re.search(r"-c(\d+)$", str(summary.get("run_id", "")))
    return int(match.group(1)) if match else None


def element(name, content=None, **attributes):
    """One SVG element, its text and attributes escaped; font_size=... is written font-size."""
    rendered = "".join(f' {key.rstrip("_").replace("_", "-")}="{html.escape(attribute_text(value))}"'
                       for key, value in attributes.items())
    return f"<{name}{rendered}/>" if content is None else f"<{name}{rendered}>{html.escape(content)}</{name}>"


def attribute_text(value):
    return f"{value:.1f}" if isinstance(value, float) else str(value)


def text(x, y, content, size=12, anchor="start", **attributes):
    return element("text", content, x=x, y=y, font_size=size, text_anchor=anchor, **attributes)


def thousands(value):
    return f"{round(value):,}"


def compact(value):
    return f"{round(value / 1000, 3):g}k" if value >= 1000 else f"{round(value, 3):g}"


def nice_scale(maximum):
    """The top of the axis and the gridline step: 3 to 5 intervals of 1, 2, 2.5 or 5 times a power of ten."""
    if maximum <= 0:
        return 1.0, 0.25
    rough = maximum / 5
    magnitude = 10 ** math.floor(math.log10(rough))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= rough)
    return math.ceil(maximum / step) * step, step


def plot_area(panel):
    x, y = panel
    return x + 60, y + 40, PANEL_WIDTH - 75, PANEL_HEIGHT - 80  # left, top, width, height


def panel_frame(panel, title):
    x, y = panel
    return [element("rect", x=x, y=y, width=PANEL_WIDTH, height=PANEL_HEIGHT, rx=6, fill="none", stroke="#dddddd"),
            text(x + 14, y + 24, title, size=15, font_weight="bold", fill="#222222")]


def column_centre(area, index, columns):
    left, _, width, _ = area
    return left + width * (index + 0.5) / columns


def axes(area, counts, top_value, step):
    """Gridlines with their values, one label per connection count, and "no data" when there are none."""
    left, top, width, height = area
    parts = []
    for index in range(round(top_value / step) + 1):
        y = top + height - height * index * step / top_value
        parts.append(element("line", x1=left, y1=y, x2=left + width, y2=y,
                             stroke="#999999" if index == 0 else "#e5e5e5"))
        parts.append(text(left - 6, y + 4, compact(index * step), size=11, anchor="end", fill="#555555"))
    for index, count in enumerate(counts):
        parts.append(text(column_centre(area, index, len(counts)), top + height + 18, f"{count} connections",
                          size=12, anchor="middle", fill="#333333"))
    if not counts:
        parts.append(text(left + width / 2, top + height / 2, "no data", size=13, anchor="middle", fill="#888888"))
    return parts


def bar_panel(panel, scenario, title, results):
    parts = panel_frame(panel, title)
    left, top, width, height = area = plot_area(panel)
    tps, rps = results["tps"], results["rps"]
    counts = sorted({c for s, c in tps if s == scenario} | {c for s, c in rps if s == scenario})
    reference = MEMORY_REFERENCES.get(scenario)
    # run.sh measures the memory store at one connection count.
    memory = sorted((c, v) for (s, c), v in rps.items() if s == reference and v is not None)[:1]
    values = [v for key, v in list(tps.items()) + list(rps.items()) if key[0] == scenario and v is not None]
    top_value, step = nice_scale(max(values + [v for _, v in memory], default=0) * 1.1)  # room for labels
    parts += axes(area, counts, top_value, step)
    bar_width = min(56.0, width / max(len(counts), 1) * 0.32)
    for index, count in enumerate(counts):
        centre = column_centre(area, index, len(counts))
        for bar_x, value, colour in ((centre - 2 - bar_width, tps.get((scenario, count)), PGBENCH_COLOUR),
                                     (centre + 2, rps.get((scenario, count)), BITBURST_COLOUR)):
            label_x = bar_x + bar_width / 2
            if value is None:
                parts.append(text(label_x, top + height - 6, "failed", size=11, anchor="middle", fill=FAILED_COLOUR))
                continue
            bar_height = height * value / top_value
            parts.append(element("rect", x=bar_x, y=top + height - bar_height, width=bar_width, height=bar_height,
                                 fill=colour))
            parts.append(text(label_x, top + height - bar_height - 4, thousands(value), size=11, anchor="middle",
                              fill="#222222"))
    for connections, value in memory:
        y = top + height - height * value / top_value
        parts.append(element("line", x1=left, y1=y, x2=left + width, y2=y, stroke=MEMORY_COLOUR, stroke_width=1.5,
                             stroke_dasharray="6 4"))
        # On the title's line, where no bar label can be: the line itself may run through them.
        panel_x, panel_y = panel
        parts.append(text(panel_x + PANEL_WIDTH - 14, panel_y + 24,
                          f"memory store, {connections} conns: {thousands(value)}/s",
                          size=11, anchor="end", fill=MEMORY_COLOUR))
    return parts


def spread_labels(labels, lowest):
    """Stack labels at one x at least LABEL_GAP apart, none below `lowest`, so that close values stay readable."""
    placed = []
    for y, content, colour in sorted(labels):
        placed.append((max(y, placed[-1][0] + LABEL_GAP) if placed else y, content, colour))
    for index in reversed(range(len(placed))):  # then push back up whatever went below the axis
        limit = lowest if index == len(placed) - 1 else placed[index + 1][0] - LABEL_GAP
        placed[index] = (min(placed[index][0], limit),) + placed[index][1:]
    return placed


def p99_panel(panel, results):
    parts = panel_frame(panel, "BitBurst p99 latency (ms)")
    _, top, _, height = area = plot_area(panel)
    p99 = {key: v for key, v in results["p99_ms"].items() if key[0] in P99_COLOURS}
    counts = sorted({c for _, c in p99})
    top_value, step = nice_scale(max((v for v in p99.values() if v is not None), default=0) * 1.1)
    parts += axes(area, counts, top_value, step)
    labels = {count: [] for count in counts}
    for scenario, colour in P99_COLOURS.items():
        segments = [[]]
        for index, count in enumerate(counts):
            value = p99.get((scenario, count))
            if value is None:
                segments.append([])  # a failed run breaks the line rather than bridging it
                continue
            point = (column_centre(area, index, len(counts)), top + height - height * value / top_value)
            segments[-1].append(point)
            labels[count].append((point[1] + 4, f"{value:.0f}" if value >= 100 else f"{value:.1f}", colour))
        for segment in segments:
            if len(segment) > 1:
                points = " ".join(f"{x:.1f},{y:.1f}" for x, y in segment)
                parts.append(element("polyline", points=points, fill="none", stroke=colour, stroke_width=2))
            parts += [element("circle", cx=x, cy=y, r=4, fill=colour, stroke="#ffffff") for x, y in segment]
    for index, count in enumerate(counts):
        # Left of the first points and right of the others, where their lines are not.
        offset, anchor = (-10, "end") if index == 0 and len(counts) > 1 else (10, "start")
        label_x = column_centre(area, index, len(counts)) + offset
        # A white halo keeps a label legible where another scenario's line crosses it.
        parts += [text(label_x, y, content, size=11, anchor=anchor, fill=colour, stroke="#ffffff", stroke_width=3,
                       paint_order="stroke")
                  for y, content, colour in spread_labels(labels[count], top + height - 3)]
    return parts


def legend(results):
    items = [("bar", PGBENCH_COLOUR, "pgbench tps"), ("bar", BITBURST_COLOUR, "BitBurst req/s")]
    if any(s in MEMORY_SCENARIOS and v is not None for (s, _), v in results["rps"].items()):
        items.append(("dash", MEMORY_COLOUR, "memory store req/s"))
    present = {s for s, _ in results["p99_ms"]}
    items += [("line", c, f"p99 {s}") for s, c in P99_COLOURS.items() if s in present]
    widths = [44 + len(label) * 7.4 for _, _, label in items]  # a generous width for 12 px sans-serif
    x, y, parts = (WIDTH - sum(widths)) / 2, 735, []
    for (kind, colour, label), item_width in zip(items, widths):
        if kind == "bar":
            parts.append(element("rect", x=x, y=y - 10, width=14, height=14, fill=colour))
        else:
            parts.append(element("line", x1=x - 4, y1=y - 3, x2=x + 18, y2=y - 3, stroke=colour, stroke_width=2,
                                 stroke_dasharray="6 4" if kind == "dash" else "none"))
            if kind == "line":
                parts.append(element("circle", cx=x + 7, cy=y - 3, r=4, fill=colour, stroke="#ffffff"))
        parts.append(text(x + 24, y + 2, label, fill="#222222"))
        x += item_width
    return parts


def render(results, raw_name, title):
    heading = "BitBurst over HTTP vs pgbench on the same PostgreSQL" + (f": {title}" if title else "")
    parts = [element("rect", x=0, y=0, width=WIDTH, height=HEIGHT, fill="#ffffff"),
             text(WIDTH / 2, 34, heading, size=18, anchor="middle", font_weight="bold", fill="#222222")]
    for panel, (scenario, panel_title) in zip(PANEL_ORIGINS, BAR_PANELS):
        parts += bar_panel(panel, scenario, panel_title, results)
    parts += p99_panel(PANEL_ORIGINS[3], results)
    parts += legend(results)
    parts.append(text(25, HEIGHT - 18, f"bench/run.sh, {raw_name}", size=11, fill="#555555"))
    opening = (f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
               f'viewBox="0 0 {WIDTH} {HEIGHT}" font-family="DejaVu Sans, Helvetica, Arial, sans-serif">')
    return "\n".join([opening] + parts + ["</svg>", ""])


def default_output(raw_path):
    directory = os.path.dirname(os.path.abspath(raw_path))
    # run.sh writes results/raw/<time>.jsonl and results/latest.md: the chart goes beside latest.md.
    if os.path.basename(directory) == "raw":
        directory = os.path.dirname(directory)
    return os.path.join(directory, "latest.svg")


def main():
    parser = argparse.ArgumentParser(description="Draw a bench/run.sh raw results file as an SVG chart.")
    parser.add_argument("raw", help="a bench/results/raw/<time>.jsonl file")
    parser.add_argument("--output", help="the SVG to write (default: results/latest.svg beside raw/)")
    parser.add_argument("--title", help="text for the heading, e.g. the commit")
    args = parser.parse_args()
    if not os.path.isfile(args.raw):
        print(f"chart.py: {args.raw}: no such file (or not a file)", file=sys.stderr)
        sys.exit(2)
    results = load_results(args.raw)
    known = {s for s, _ in BAR_PANELS} | MEMORY_SCENARIOS
    if not any(s in known for values in results.values() for s, _ in values):
        print(f"chart.py: {args.raw}: no usable pgbench or loadgen lines from bench/run.sh", file=sys.stderr)
        sys.exit(2)
    output = args.output or default_output(args.raw)
    with open(output, "w", encoding="utf-8", newline="\n") as svg:
        svg.write(render(results, os.path.basename(args.raw), args.title))
    print(f"wrote {output}")


if __name__ == "__main__":
    main()
