"""Rank the tests of a TINYML_CPU_REPORT file (conftest.py writes it: a test's node id and CPU seconds per line)
per file and per test: CPU seconds say what the suite costs on a loaded machine, where wall times mislead."""
import collections
import sys


def main(path, top=30):
    per_file, rows = collections.Counter(), []
    with open(path) as f:
        for line in f:
            nodeid, cpu = line.rstrip("\n").split("\t")[:2]
            per_file[nodeid.split("::")[0]] += float(cpu)
            rows.append((float(cpu), nodeid))
    print(f"total CPU {sum(per_file.values()):.0f} s over {len(rows)} tests")
    for name, cpu in per_file.most_common():
        print(f"{cpu:8.1f}  {name}")
    print()
    for cpu, nodeid in sorted(rows, reverse=True)[:top]:
        print(f"{cpu:8.1f}  {nodeid}")


if __name__ == "__main__":
    main(sys.argv[1], *(int(a) for a in sys.argv[2:]))
