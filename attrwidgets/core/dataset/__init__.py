"""Dataset-scale attribution (aw.attribute_dataset): read a dataset, attribute every example on one machine or a
Ray cluster, write Parquet shards with a manifest, resume a killed run, open the result (docs/methods/dataset.md).

Modules, lowest first: inputs (any dataset -> records), examples (one model, one example -> one row), shards
(the Parquet schema, atomic shards, what is written), manifest (what a run was, refusing to mix runs), engines
(the local loop and the Ray actor pool), result (DatasetResult), run (attribute_dataset itself).
"""
