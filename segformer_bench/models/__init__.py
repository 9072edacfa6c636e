"""Model families (SegFormer, the DeepLabV3+ baseline) behind one protocol (``base.py``), their table
(``registry.py``), and the readers and writers of their checkpoint formats (``checkpoints/``)."""
