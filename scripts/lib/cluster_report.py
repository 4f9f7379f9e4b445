"""The verdicts of scripts/cluster-test.sh on a sum-squares job that ran through failures.

  cluster_report.py check SUMMARY OUTPUT FROM COUNT LOST_FILE
      Exit 0 if the job is exact: the summary says completed, COUNT items, none failed, and the output
      (JSON lines) has each index 0..COUNT-1 exactly once with input FROM+index and output n(n-1)(2n-1)/6.
      Writes the number of items missing or wrong to LOST_FILE; explains every problem on stderr.
  cluster_report.py size CALIBRATION FROM COUNT JOB_COUNT SECONDS
      Prints the first n of a JOB_COUNT-item job that should take SECONDS, given that the COUNT-item job
      from n = FROM whose summary is CALIBRATION took its elapsed_ms (an item's work grows with n).
  cluster_report.py table PROGRESS EVENTS SUMMARY LOST_FILE
      Prints, for each failure, the longest time the job made no progress (a pause counts for the failure
      in whose time it ended) and the duplicate results the consumer ignored meanwhile, from the progress samples ("<time> <master> <items>,<duplicates>,<status>,"
      lines) and the failures' start times ("<time>\\t<name>" lines); each failure lasts until the next starts.
"""

import json
import os
import sys


def closed_form(n):
    return n * (n - 1) * (2 * n - 1) // 6


def read_summary(path, problems):
    try:
        return json.load(open(path))
    except (OSError, ValueError) as error:
        problems.append(f"no summary ({error})")
        return {}


def check(summary_path, output_path, start, count, lost_path):
    problems = []
    summary = read_summary(summary_path, problems)
    for key, expected in (("status", "completed"), ("items", count), ("failed", 0)):
        if summary.get(key) != expected:
            problems.append(f"summary {key} is {summary.get(key)!r}, expected {expected!r}")

    seen = {}
    lines = 0
    wrong = []
    for line in open(output_path) if os.path.exists(output_path) else []:
        lines += 1
        record = json.loads(line)
        index = record.get("index")
        seen[index] = seen.get(index, 0) + 1
        n = start + index if isinstance(index, int) else None
        if n is None or record.get("input") != n or record.get("output") != closed_form(n):
            wrong.append(record)
    twice = sorted(index for index, times in seen.items() if times > 1)
    missing = [index for index in range(count) if index not in seen]
    lost = len(missing) + len(wrong)
    if lines != count:
        problems.append(f"{lines} output lines, expected {count}")
    if missing:
        problems.append(f"{len(missing)} indexes missing, first {missing[:5]}")
    if twice:
        problems.append(f"{len(twice)} indexes written more than once, first {twice[:5]}")
    if wrong:
        problems.append(f"{len(wrong)} lines with a wrong input or output, first {wrong[:2]}")
    with open(lost_path, "w") as out:
        print(lost, file=out)
    for problem in problems:
        print(f"  {problem}", file=sys.stderr)
    return 1 if problems else 0


def size(calibration_path, start, count, job_count, seconds):
    elapsed = json.load(open(calibration_path))["elapsed_ms"] / 1000
    # The same number of items per chunk and the same workers: time grows with items and with n.
    n = seconds * start * count / (job_count * elapsed)
    print(int(min(max(n, 200_000), 20_000_000)))
    return 0


def samples(progress_path):
    """(time, items, duplicates) of every sample that read the job's counters."""
    result = []
    for line in open(progress_path):
        fields = line.split()
        if len(fields) < 3:
            continue
        values = fields[2].split(",")
        if len(values) < 2 or not values[0]:
            continue
        result.append((float(fields[0]), int(values[0]), int(values[1] or 0)))
    return result


def longest_gap(changes, start, end, inside=False):
    """The longest time between two consecutive progress changes that ended in (start, end]: a pause a
    failure causes began just before it and ends after it, and one that outlasts the next failure's start is
    the next one's (inside: only the intervals that lie wholly in [start, end])."""
    gaps = [b - a for a, b in zip(changes, changes[1:]) if start < b <= end and (a >= start or not inside)]
    return max(gaps, default=None)


def duplicates_at(points, moment):
    before = [dups for time, _, dups in points if time <= moment]
    return before[-1] if before else 0


def table(progress_path, events_path, summary_path, lost_path):
    points = samples(progress_path)
    if not points:
        print("no progress samples: no table", file=sys.stderr)
        return 1
    changes = [t for (t, items, _), (_, before, _) in zip(points[1:], points) if items > before]
    events = []
    for line in open(events_path):
        moment, name = line.rstrip("\n").split("\t", 1)
        events.append((float(moment), name))
    finished = points[-1][0]
    lost = int(open(lost_path).read()) if os.path.exists(lost_path) else None
    summary = read_summary(summary_path, [])

    # Normal running: from the first progress to the first failure, without the pause that failure began.
    rows = [("(none: normal running, before the first failure)",
             longest_gap(changes, changes[0] if changes else finished, events[0][0] if events else finished,
                         inside=True), "", "0")]
    ends = [moment for moment, _ in events[1:]] + [finished]
    for (start, name), end in zip(events, ends):
        pause = longest_gap(changes, start, end)
        duplicates = duplicates_at(points, end) - duplicates_at(points, start)
        # Losses show only in the finished job's output, so a failure's own count is known only when
        # the whole job lost nothing.
        rows.append((name, pause, "0" if lost == 0 else "?", str(duplicates)))
    rows.append(("whole job", None, "?" if lost is None else str(lost),
                 str(summary.get("duplicates_ignored", "?"))))

    width = max(len(row[0]) for row in rows)
    print(f"{'failure':<{width}}  {'pause (s)':>9}  {'items lost':>10}  {'duplicates suppressed':>21}")
    for name, pause, lost_here, duplicates in rows:
        shown = "-" if pause is None else f"{pause:.1f}"
        print(f"{name:<{width}}  {shown:>9}  {lost_here or '-':>10}  {duplicates:>21}")
    return 0


def main(argv):
    if len(argv) == 7 and argv[1] == "check":
        return check(argv[2], argv[3], int(argv[4]), int(argv[5]), argv[6])
    if len(argv) == 7 and argv[1] == "size":
        return size(argv[2], int(argv[3]), int(argv[4]), int(argv[5]), float(argv[6]))
    if len(argv) == 6 and argv[1] == "table":
        return table(*argv[2:6])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
