"""Legacy data from the original "simple API": `snipix import-legacy` and `export-legacy`.

- `formats`: the two file shapes, detected and read record by record (whole-file parse
  below a size threshold, `ijson` streaming above it), and JSON errors with line/column;
- `records`: each record validated with the models the API uses, into the documents the
  services would store (and a content checksum);
- `importer`: the plan (owners, what is new, present or in conflict) and the writes;
- `exporter`: the database written back as the export shape;
- `report`: counts, skipped records and conflicts, for the terminal and `--report`;
- `cli`: the typer commands.
"""
