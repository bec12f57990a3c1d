"""Datasets apart from training: the row formats and their converters (:mod:`corpora.formats`),
the readers of every upload file format (:mod:`corpora.files`), the validation and
registration of a file as a catalog dataset (:mod:`corpora.registration`) and the built-in
chatterbot corpus (:mod:`corpora.chatterbot`). The gateway's dataset task, the training
engine, ``garden demo`` and the benchmarks import it; it imports only :mod:`catalog`.
"""
