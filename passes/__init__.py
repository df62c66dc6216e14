"""Built-in ovq passes, installed as ``ovq.passes``.

Kept apart from the core package: ``import ovq`` never imports this package.
"""
