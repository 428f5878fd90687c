"""Weight files and where they come from: checkpoints, pretrained models, conversions.

:mod:`.checkpoint` saves and loads checkpoints with metadata; :mod:`.pretrained` prepares the
published models (cache, local folders, download) with the converters of :mod:`.convert`;
:mod:`.locations` finds the shared folder, the user weights folders and the cache;
:mod:`.download` fetches files with a sha256 check.
"""
