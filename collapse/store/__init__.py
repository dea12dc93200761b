"""A run on storage, and nothing above it: the layer every other one writes through.

A run is a folder on a local disk or under `s3://` (`storage`, pyarrow's file systems with
retries and one-line errors), laid out as `layout` names it, with its config stored once and
vouched for by a checksum (`run_config`), and a manifest that is the only commit point
(`run_store`: artifacts written first, the manifest replaced atomically last; `manifest`
checks a manifest before it is trusted; `records` types what it holds). One driver at a time
holds a run (`lease`); a resumed run checks and repairs what a crash left (`integrity`); Ray
Train checkpoints of committed generations are pruned (`retention`). `sample_counts` keeps each
generation's sample count as runs, and `sweep_trials` reads a sweep's trials back. Nothing
here knows what a chain computes: no data, model or Ray code.
"""
