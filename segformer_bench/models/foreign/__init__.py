"""Model families this package does not implement itself, each behind the Segmenter interface: a transformers
directory (``transformers.py``), a user's factory (``python.py``), mmsegmentation (``mmseg.py``); ``hooks.py``
taps named modules' outputs for the ERF analysis."""
