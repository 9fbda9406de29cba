"""Token attribution during generation (docs/methods/token.md): the session that generates once and computes
any method for any rows (session.py), the method registry and its built-in methods (registry.py, catalog.py,
methods/ with layer IG), the Attribution result, its files and word-level view (result.py, result_write.py,
result_io.py, words.py). This package imports nothing on its own: import its modules."""
