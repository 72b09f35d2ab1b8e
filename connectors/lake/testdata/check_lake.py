"""Independent reader for the lake tests: reads a lake root with pyarrow and
prints JSON. Tested with pyarrow 26.0.1 (python3 -m pip install pyarrow==26.0.1).

Usage: python3 check_lake.py ROOT

Output:
  pyarrow     the pyarrow version
  partitions  rows per "date=YYYY-MM-DD/hour=HH", counted by pyarrow.dataset
              with hive partitioning over the whole root
  files       one object per *.parquet file, sorted by path: path, rows,
              types (column -> arrow type), columns (column -> values;
              timestamps as int64 microseconds since the epoch)
  stray       files under root that are neither *.parquet nor the manifest
"""
import collections
import json
import os
import sys

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq


def main(root):
    files, stray = [], []
    for dirpath, _, names in os.walk(root):
        for name in names:
            rel = os.path.relpath(os.path.join(dirpath, name), root).replace(os.sep, "/")
            if name.endswith(".parquet"):
                files.append(rel)
            elif rel != "_manifest.jsonl":
                stray.append(rel)
    files.sort()

    out_files = []
    for rel in files:
        table = pq.read_table(os.path.join(root, rel))
        cols, types = {}, {}
        for field, col in zip(table.schema, table.columns):
            types[field.name] = str(field.type)
            if pa.types.is_timestamp(field.type):
                col = col.cast(pa.timestamp("us", tz=field.type.tz)).cast(pa.int64())
            cols[field.name] = col.to_pylist()
        out_files.append({"path": rel, "rows": table.num_rows, "types": types, "columns": cols})

    partitions = collections.Counter()
    if files:
        dataset = ds.dataset(root, format="parquet", partitioning="hive")
        table = dataset.to_table(columns=["date", "hour"])
        for d, h in zip(table.column("date").to_pylist(), table.column("hour").to_pylist()):
            partitions["date=%s/hour=%02d" % (d, int(h))] += 1

    json.dump({"pyarrow": pa.__version__, "partitions": partitions, "files": out_files, "stray": stray}, sys.stdout)


if __name__ == "__main__":
    main(sys.argv[1])
